"""The shortcut objective (Frans et al. 2024) on Fashion-MNIST 28x28: the 6.5M UNet of fashion_mnist_flow.py.

  pretrainx train --config configs/diffusion/fashion_mnist_shortcut.py --workdir workdirs/fmnist_shortcut
  pretrainx train --config configs/diffusion/fashion_mnist_shortcut.py:cond --workdir workdirs/fmnist_shortcut_cond
  pretrainx sample --workdir workdirs/fmnist_shortcut --sampler shortcut --steps 1 --num-samples 64

Everything but the objective is fashion_mnist_flow.py's (same variant: UNet, data, optimiser, EMA,
30k steps, FID protocol), so its FIDs compare with the flow run's Euler 32/4/2/1 at the same step
count (the step costs differ: pretrainx flops). Its shortcut section, shown in
pretrainx/config/images.py, is digits_shortcut.py's (which states the paper's hyperparameters
and the scaling down) with this variant's label dropout. FID at 1, 2, 4 and 32 steps of the
shortcut sampler. `:smoke` is fashion_mnist_flow.py's CPU-sized smoke run with this objective
(needs ../shared/data).
"""
from pretrainx.config import images, variants


def get_config(arg: str = ""):
    return images.fashion_mnist("shortcut", variants.parse(arg, __file__, "cond", "smoke"))
