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
import os

from pretrainx.config import load as config_lib

_SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


def get_config(arg: str = ""):
    if arg not in ("", "cond", "jpeg"):
        raise ValueError(f"unknown variant {arg!r} of cifar10_ddpm (known: cond, jpeg)")
    # Every field not set here is fashion_mnist_ddpm's (the same DDPM recipe at 28x28).
    c = config_lib.load(os.path.join(os.path.dirname(__file__), "fashion_mnist_ddpm.py") +
                        (":cond" if arg == "cond" else ""))
    c.data.kind = "tfds_images"
    c.data.tfds_name = "cifar10"
    c.data.tfds_data_dir = ""         # "": TFDS's default (~/tensorflow_datasets)
    c.data.train_split = "train"
    c.data.heldout_split = "test"
    c.data.path = ""
    c.data.image_size = 0             # 0: native 32x32
    c.data.random_flip = True
    c.model.image_shape = (32, 32, 3)
    c.model.ch = 128
    c.model.ch_mult = (1, 2, 2, 2)
    c.model.num_res_blocks = 2
    c.model.attn_resolutions = (16,)
    c.model.dropout = 0.1
    c.optimizer.lr = 2e-4
    c.optimizer.warmup_steps = 5000
    c.optimizer.decay_steps = 800000
    c.optimizer.ema_decay = 0.9999    # evaluators see the EMA weights
    c.batch_size = 128
    c.train.steps = 800000
    c.eval.every = 50000
    c.eval.fid_samplers = ("ancestral:1000", "ddim:50")   # the first is reported as "fid"
    c.checkpoint.every = 10000
    c.sample.sampler = "ancestral"    # "ancestral" (all T steps) | "ddim"
    if arg == "jpeg":
        c.data.kind = "image_archive"
        c.data.path = os.path.normpath(os.path.join(_SHARED, "cifar10-test-jpeg"))
        c.data.heldout_fraction = 0.1     # 9000 train / 1000 held out, a fixed split
        c.eval.fid_num_samples = 1000
        c.eval.fid_num_reference = 9000
    return c
