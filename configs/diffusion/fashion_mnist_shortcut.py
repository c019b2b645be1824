"""The shortcut objective (Frans et al. 2024) on Fashion-MNIST 28x28: the 6.5M UNet of fashion_mnist_flow.py.

  pretrainx train --config configs/diffusion/fashion_mnist_shortcut.py --workdir workdirs/fmnist_shortcut
  pretrainx train --config configs/diffusion/fashion_mnist_shortcut.py:cond --workdir workdirs/fmnist_shortcut_cond
  pretrainx sample --workdir workdirs/fmnist_shortcut --sampler shortcut --steps 1 --num-samples 64

Everything but the objective is fashion_mnist_flow.py's (same variant: UNet, data, optimiser, EMA,
30k steps, FID protocol), so its FIDs compare with the flow run's Euler 32/4/2/1 at the same step
count (the step costs differ: pretrainx flops). The shortcut section is
digits_shortcut.py's (which states the paper's hyperparameters and the scaling down) with this
variant's label dropout. FID at 1, 2, 4 and 32 steps of the shortcut sampler. `:smoke` is
fashion_mnist_flow.py's CPU-sized smoke run with this objective (needs ../shared/data).
"""
import os

from pretrainx.config import load as config_lib

VARIANTS = ("", "cond", "smoke")


def get_config(arg: str = ""):
    if arg not in VARIANTS:
        raise ValueError(f"unknown variant {arg!r} of fashion_mnist_shortcut (known: cond, smoke)")
    here = os.path.dirname(__file__)
    c = config_lib.load(os.path.join(here, "fashion_mnist_flow.py") + (f":{arg}" if arg else ""))
    c.objective = "shortcut"
    c.shortcut = config_lib.load(os.path.join(here, "digits_shortcut.py")).shortcut
    c.shortcut.cfg_drop = c.flow.cfg_drop
    del c.flow
    c.sample.sampler = "shortcut"
    c.sample.steps = 1
    c.sample.guidance = 1.0           # any guidance is trained in (see digits_shortcut.py)
    c.eval.fid_samplers = ("shortcut:1", "shortcut:2", "shortcut:4", "shortcut:32")
    return c
