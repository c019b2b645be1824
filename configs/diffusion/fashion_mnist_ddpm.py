"""DDPM (Ho et al. 2020) on Fashion-MNIST 28x28: a 6.5M-parameter UNet, epsilon prediction.

  pretrainx train --config configs/diffusion/fashion_mnist_ddpm.py --workdir workdirs/fmnist_ddpm
  pretrainx train --config configs/diffusion/fashion_mnist_ddpm.py:cond --workdir workdirs/fmnist_ddpm_cond
  pretrainx sample --workdir workdirs/fmnist_ddpm --sampler ddim --steps 50 --num-samples 64

Ho et al.'s recipe scaled to 28x28 grey images: ch 64, mult (1, 2, 2) (28 -> 14 -> 7), 2 res blocks,
attention at 14x14, dropout 0.1, linear betas 1e-4 -> 0.02 over T = 1000, Adam 2e-4 with 1000
warm-up steps, clip 1.0, batch 128, EMA 0.999 (0.9999 suits only much longer runs). The FID uses
the framework's cached Fashion-MNIST classifier features (pretrainx/evaluators/fid.py): 10k samples against
10k training images, with the held-out t10k floor; `:cond` trains class-conditionally with 10 %
label dropout and samples with classifier-free guidance.
"""
from pretrainx.config import images, variants


def get_config(arg: str = ""):
    return images.fashion_mnist("ddpm", variants.parse(arg, __file__, "cond", "smoke"))
