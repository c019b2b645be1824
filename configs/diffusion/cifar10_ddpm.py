"""Ho et al. (2020)'s CIFAR-10 DDPM: the 35.7M-parameter UNet, T = 1000 linear betas.

  pretrainx train --config configs/diffusion/cifar10_ddpm.py --workdir workdirs/cifar10_ddpm
  pretrainx train --config configs/diffusion/cifar10_ddpm.py:jpeg --workdir /tmp/cifar_jpeg
  pretrainx sample --workdir workdirs/cifar10_ddpm --sampler ancestral --num-samples 64

The paper's numbers: ch 128, mult (1, 2, 2, 2), 2 res blocks, attention at 16x16, dropout 0.1,
random horizontal flips, Adam lr 2e-4 (constant after 5000 warm-up steps), batch 128, grad clip 1.0,
EMA 0.9999, T = 1000 with betas 1e-4 -> 0.02, epsilon prediction, 800k steps, ancestral sampling
with sigma^2 = beta. Data: TFDS "cifar10" (prepared beforehand: nothing is downloaded; set
data.tfds_data_dir). `:jpeg` trains on the 10k test-set JPEGs in ../shared/data instead (a
pipeline check, not the benchmark). The FID is this framework's classifier-feature FID, not the
paper's Inception FID (register an "inception_v3" extractor in pretrainx/evaluators/fid.py for that).
"""
from pretrainx.config import base, images, text, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "cond", "jpeg")
    c = images.fashion_mnist("ddpm", flags & {"cond"})   # the same DDPM recipe at 28x28
    c.data = images.tfds_images_data("cifar10")
    c = base.change(c, {"model.image_shape": (32, 32, 3), "model.ch": 128, "model.ch_mult": (1, 2, 2, 2),
                        "model.attn_resolutions": (16,), "optimizer.warmup_steps": 5000,
                        "optimizer.ema_decay": 0.9999,   # evaluators see the EMA weights
                        "eval.fid_samplers": ("ancestral:1000", "ddim:50"),
                        "sample.sampler": "ancestral"})
    c = base.change(base.length(c, 800000, every=50000), {"checkpoint.every": 10000})
    if "jpeg" in flags:
        c.data = images.image_archive_data(text.shared_data("cifar10-test-jpeg"))   # 9000 / 1000 held out
        c = base.change(c, {"eval.fid_num_samples": 1000, "eval.fid_num_reference": 9000})
    return c
