"""Objectives register themselves on import; importing this package makes all of them available.
The contract they follow is in base.py (and docs/design.md)."""
from pretrainx.objectives.base import (DENOMINATOR, BatchContext, DataRequest,  # noqa: F401
                                       DataSpec, EvalContext, Objective, SampleOption,
                                       StepContext, build, get, names, register)
from pretrainx.objectives import (classify, clm, clm_mlm, diffusion, dpo, flow,  # noqa: F401,E402
                                  meanflow, mlm, ppo, prefix_lm, reward, shortcut,
                                  span_corruption, ul2)
