"""Rectified flow (flow matching on the linear path) on Fashion-MNIST 28x28, the same 6.5M UNet.

  pretrainx train --config configs/diffusion/fashion_mnist_flow.py --workdir workdirs/fmnist_flow
  pretrainx train --config configs/diffusion/fashion_mnist_flow.py:cond --workdir workdirs/fmnist_flow_cond
  pretrainx sample --workdir workdirs/fmnist_flow --sampler euler --steps 32 --num-samples 64

Everything but the objective matches fashion_mnist_ddpm.py (UNet, optimiser, EMA, batch, steps),
so the two FIDs compare objectives: x_t = (1 - t) x_0 + t eps, velocity regression, t ~ U(0, 1);
FID with Euler at 32, 4, 2 and 1 steps (the first is reported as "fid"). `:cond` trains
class-conditionally with 10 % label dropout and samples with classifier-free guidance.
"""
from pretrainx.config import images, variants


def get_config(arg: str = ""):
    return images.fashion_mnist("flow", variants.parse(arg, __file__, "cond", "smoke"))
