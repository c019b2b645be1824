"""The meanflow objective (Geng et al. 2025) on Fashion-MNIST 28x28: the 6.5M UNet of fashion_mnist_flow.py.

  pretrainx train --config configs/diffusion/fashion_mnist_meanflow.py --workdir workdirs/fmnist_meanflow
  pretrainx train --config configs/diffusion/fashion_mnist_meanflow.py:cond --workdir workdirs/fmnist_meanflow_cond
  pretrainx sample --workdir workdirs/fmnist_meanflow --sampler meanflow --steps 1 --num-samples 64

Everything but the objective is fashion_mnist_flow.py's (same variant: UNet, data, optimiser, EMA,
30k steps, FID protocol), so its FIDs compare with the flow run's Euler 32/4/2/1 at the same step
count (the step costs differ: pretrainx flops). The meanflow section
(pretrainx/config/images.py) is digits_meanflow.py's (which states the paper's hyperparameters and the scaling down) with this
variant's label dropout. FID at 1, 2, 4 and 32 steps of the meanflow sampler. `:smoke` is
fashion_mnist_flow.py's CPU-sized smoke run with this objective (needs ../shared/data).
"""
from pretrainx.config import images, variants


def get_config(arg: str = ""):
    return images.fashion_mnist("meanflow", variants.parse(arg, __file__, "cond", "smoke"))
