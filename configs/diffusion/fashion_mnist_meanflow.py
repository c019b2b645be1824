"""The meanflow objective (Geng et al. 2025) on Fashion-MNIST 28x28: the 6.5M UNet of fashion_mnist_flow.py.

  pretrainx train --config configs/diffusion/fashion_mnist_meanflow.py --workdir workdirs/fmnist_meanflow
  pretrainx train --config configs/diffusion/fashion_mnist_meanflow.py:cond --workdir workdirs/fmnist_meanflow_cond
  pretrainx sample --workdir workdirs/fmnist_meanflow --sampler meanflow --steps 1 --num-samples 64

Everything but the objective is fashion_mnist_flow.py's (same variant: UNet, data, optimiser, EMA,
30k steps, FID protocol), so its FIDs compare with the flow run's Euler 32/4/2/1 at the same step
count (the step costs differ: pretrainx flops). The meanflow section is
digits_meanflow.py's (which states the paper's hyperparameters and the scaling down) with this
variant's label dropout. FID at 1, 2, 4 and 32 steps of the meanflow sampler. `:smoke` is
fashion_mnist_flow.py's CPU-sized smoke run with this objective (needs ../shared/data).
"""
import os

from pretrainx.config import load as config_lib

VARIANTS = ("", "cond", "smoke")


def get_config(arg: str = ""):
    if arg not in VARIANTS:
        raise ValueError(f"unknown variant {arg!r} of fashion_mnist_meanflow (known: cond, smoke)")
    here = os.path.dirname(__file__)
    c = config_lib.load(os.path.join(here, "fashion_mnist_flow.py") + (f":{arg}" if arg else ""))
    c.objective = "meanflow"
    c.meanflow = config_lib.load(os.path.join(here, "digits_meanflow.py")).meanflow
    c.meanflow.cfg_drop = c.flow.cfg_drop
    del c.flow
    c.sample.sampler = "meanflow"
    c.sample.steps = 1
    c.sample.guidance = 1.0           # any guidance is trained in (see digits_meanflow.py)
    c.eval.fid_samplers = ("meanflow:1", "meanflow:2", "meanflow:4", "meanflow:32")
    return c
