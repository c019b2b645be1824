"""Shortcut model (Frans et al. 2024) on the 8x8 digits: the few-step experiment and a CPU smoke run.

  pretrainx train --config configs/diffusion/digits_shortcut.py --workdir workdirs/fewstep_shortcut
  pretrainx train --config configs/diffusion/digits_shortcut.py:smoke --workdir /tmp/digits_shortcut
  pretrainx sample --workdir /tmp/digits_shortcut --sampler shortcut --steps 1

"" is digits_few_step.py's protocol (UNet, optimiser, EMA, split, FID) with the shortcut
objective; `:smoke` is digits_smoke.py's `:flow_smoke` (0.18M UNet, 300 steps, about a minute on 2
CPU cores) with it. The paper's hyperparameters kept: M = 128 (smallest step 1/128), power-of-two
step sizes, 1/4 of the batch on self-consistency targets, 10 % label dropout. Scaled down: the
DiT-B and batch 64-256 of the paper -> a 1.0M (smoke 0.18M) UNet at batch 64; Adam 1e-3 cosine
instead of AdamW 1e-4 (these small UNets train at digits_smoke's rate); EMA 0.995 (0.999 in the
paper's code) for runs of 1e3-1e4 steps; targets from the live weights (contract: no EMA in
loss_fn). Guidance: off (shortcut.guidance = 1) so the table compares unguided samplers.
"""
import os

import ml_collections

from pretrainx.config import load as config_lib

VARIANTS = ("", "smoke")
# The flow baseline's 3000 steps x 7.23 GFLOP in steps of 8.44 GFLOP (the same training FLOPs;
# pretrainx flops counts them).
STEPS = 2570


def shortcut_section(cfg_drop: float) -> ml_collections.ConfigDict:
    s = ml_collections.ConfigDict()
    s.max_steps = 128                 # M: step sizes 1, 1/2, ..., 1/128 (1/128 is queried as d = 0)
    s.bootstrap_fraction = 0.25       # k: share of the batch with self-consistency targets
    s.guidance = 1.0                  # != 1: guided flow in the smallest-level targets (bootstrap_cfg)
    s.cfg_drop = cfg_drop             # label dropout of the flow-matching rows
    return s


def as_shortcut(c, samplers=("shortcut:1", "shortcut:2", "shortcut:4", "shortcut:32")):
    """A flow config -> the same run with the shortcut objective."""
    c.objective = "shortcut"
    c.shortcut = shortcut_section(c.flow.get("cfg_drop", 0.0))
    del c.flow
    c.sample.sampler = "shortcut"     # "shortcut": d = 1/steps | "euler": the d = 0 flow
    c.sample.steps = 1
    c.eval.fid_samplers = samplers
    return c


def get_config(arg: str = ""):
    if arg not in VARIANTS:
        raise ValueError(f"unknown variant {arg!r} of digits_shortcut (known: smoke)")
    here = os.path.dirname(__file__)
    if arg == "smoke":
        c = as_shortcut(config_lib.load(os.path.join(here, "digits_smoke.py:flow_smoke")))
        c.sample.guidance = 1.0
        return c
    c = as_shortcut(config_lib.load(os.path.join(here, "digits_few_step.py")))
    return config_lib.override(c, {"train.steps": STEPS, "optimizer.decay_steps": STEPS,
                                   "eval.every": STEPS, "checkpoint.every": STEPS})
