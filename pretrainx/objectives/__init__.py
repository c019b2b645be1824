"""Objectives register themselves on import; importing this package makes all of them available."""
from pretrainx.objectives.base import EvalContext, Objective, get, names, register  # noqa: F401
from pretrainx.objectives import clm, diffusion, flow, meanflow, shortcut  # noqa: F401,E402
