"""Rectified flow (flow matching on the linear path) on Fashion-MNIST 28x28, the same 6.5M UNet.

  pretrainx train --config configs/diffusion/fashion_mnist_flow.py --workdir workdirs/fmnist_flow
  pretrainx train --config configs/diffusion/fashion_mnist_flow.py:cond --workdir workdirs/fmnist_flow_cond
  pretrainx sample --workdir workdirs/fmnist_flow --sampler euler --steps 32 --num-samples 64

Everything but the objective matches fashion_mnist_ddpm.py (UNet, optimiser, EMA, batch, steps),
so the two FIDs compare objectives: x_t = (1 - t) x_0 + t eps, velocity regression, t ~ U(0, 1);
FID with Euler at 32, 4, 2 and 1 steps (the first is reported as "fid"). `:cond` trains
class-conditionally with 10 % label dropout and samples with classifier-free guidance.
"""
import os

import ml_collections

from pretrainx.config import load as config_lib


def get_config(arg: str = ""):
    if arg not in ("", "cond", "smoke"):
        raise ValueError(f"unknown variant {arg!r} of fashion_mnist_flow (known: cond, smoke)")
    # UNet, data, optimiser, EMA, eval and mesh as fashion_mnist_ddpm (the same variant).
    c = config_lib.load(os.path.join(os.path.dirname(__file__), "fashion_mnist_ddpm.py") +
                        (f":{arg}" if arg else ""))
    c.objective = "flow"
    del c.diffusion
    c.flow = ml_collections.ConfigDict()
    c.flow.time_sampling = "uniform"  # "uniform" | "logit_normal" (Esser et al. 2024)
    c.flow.logit_mean = 0.0
    c.flow.logit_std = 1.0
    c.flow.cfg_drop = 0.1 if arg == "cond" else 0.0   # label dropout for classifier-free guidance
    c.eval.fid_samplers = ("euler:32", "euler:4", "euler:2", "euler:1")  # first -> "fid"
    for ddpm_only in ("eta", "variance", "clip_x0"):
        del c.sample[ddpm_only]
    c.sample.sampler = "euler"        # "euler" | "heun" (2 network calls a step)
    c.sample.steps = 20 if arg == "smoke" else 32
    return c
