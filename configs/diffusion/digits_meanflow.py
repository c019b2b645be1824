"""MeanFlow (Geng et al. 2025) on the 8x8 digits: the few-step experiment and a CPU smoke run.

  pretrainx train --config configs/diffusion/digits_meanflow.py --workdir workdirs/fewstep_meanflow
  pretrainx train --config configs/diffusion/digits_meanflow.py:smoke --workdir /tmp/digits_meanflow
  pretrainx sample --workdir /tmp/digits_meanflow --sampler meanflow --steps 1

"" is digits_few_step.py's protocol (UNet, optimiser, EMA, split, FID) with the meanflow objective;
`:smoke` is digits_smoke.py's `:flow_smoke` (0.18M UNet, 300 steps) with it. The (t, r) sampler,
share of r = t and loss weighting are the authors' pixel-space UNet recipe (their CIFAR-10 code:
t ~ logit-normal(-0.6, 1.6), r ~ logit-normal(-4.0, 1.6) clamped to r <= t, 75 % of rows r != t,
p = 0.75, c = 1e-3), the nearest published setting to small pixel images; their ImageNet latent
DiT recipe is the objective's default (lognorm(-0.4, 1.0) for both, 25 % r != t, p = 1).
Scaled down: the 55M UNet / DiT-B and batch 1024 / 256 -> a 1.0M (smoke 0.18M) UNet at batch 64;
Adam 1e-3 cosine (digits_smoke's) instead of 6e-4 / 1e-4; EMA 0.995 instead of 0.9999; no dropout.
Guidance: off (omega = 1, kappa = 0) so the table compares unguided samplers; the train loss is
the adaptively weighted one (watch train/mse for the raw error).
"""
import os

import ml_collections

from pretrainx.config import load as config_lib

VARIANTS = ("", "smoke")
# The flow baseline's 3000 steps x 7.23 GFLOP in steps of 9.67 GFLOP (the same training FLOPs;
# pretrainx flops counts them).
STEPS = 2242


def meanflow_section(cfg_drop: float) -> ml_collections.ConfigDict:
    m = ml_collections.ConfigDict()
    m.mean, m.std = -0.6, 1.6         # t ~ logit-normal(mean, std)
    m.r_mean, m.r_std = -4.0, 1.6     # r ~ logit-normal, clamped to r <= t (None: the paper's
                                      # two draws from (mean, std), t the larger)
    m.equal_fraction = 0.25           # share of rows with r = t (plain flow matching)
    m.norm_p, m.norm_eps = 0.75, 1e-3  # adaptive weight 1 / (||err||^2 + eps)^p
    m.omega, m.kappa = 1.0, 0.0       # trained-in guidance (eq. 19); 1, 0: none
    m.cfg_drop = cfg_drop             # label dropout
    return m


def as_meanflow(c, samplers=("meanflow:1", "meanflow:2", "meanflow:4", "meanflow:32")):
    """A flow config -> the same run with the meanflow objective."""
    c.objective = "meanflow"
    c.meanflow = meanflow_section(c.flow.get("cfg_drop", 0.0))
    del c.flow
    c.sample.sampler = "meanflow"     # "meanflow": u over intervals of 1/steps | "euler": r = t
    c.sample.steps = 1
    c.eval.fid_samplers = samplers
    return c


def get_config(arg: str = ""):
    if arg not in VARIANTS:
        raise ValueError(f"unknown variant {arg!r} of digits_meanflow (known: smoke)")
    here = os.path.dirname(__file__)
    if arg == "smoke":
        c = as_meanflow(config_lib.load(os.path.join(here, "digits_smoke.py:flow_smoke")))
        c.sample.guidance = 1.0
        return c
    c = as_meanflow(config_lib.load(os.path.join(here, "digits_few_step.py")))
    return config_lib.override(c, {"train.steps": STEPS, "optimizer.decay_steps": STEPS,
                                   "eval.every": STEPS, "checkpoint.every": STEPS})
