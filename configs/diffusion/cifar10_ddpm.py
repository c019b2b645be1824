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
paper's Inception FID (register an "inception_v3" extractor in pretrainx/fid.py for that).
"""
import os

import ml_collections

_SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


def get_config(arg: str = ""):
    c = ml_collections.ConfigDict()
    c.objective = "ddpm"
    c.seed = 0
    c.batch_size = 128                # global: split over the mesh's data and fsdp axes

    c.data = ml_collections.ConfigDict()
    c.data.kind = "tfds_images"
    c.data.tfds_name = "cifar10"
    c.data.tfds_data_dir = ""         # "": TFDS's default (~/tensorflow_datasets)
    c.data.train_split = "train"
    c.data.heldout_split = "test"
    c.data.path = ""
    c.data.pad = 0                    # pixels of background added on each side
    c.data.image_size = 0             # 0: native 32x32
    c.data.random_flip = True

    c.model = ml_collections.ConfigDict()
    c.model.image_shape = (32, 32, 3)
    c.model.num_classes = 0           # 0: unconditional
    c.model.ch = 128
    c.model.ch_mult = (1, 2, 2, 2)
    c.model.num_res_blocks = 2
    c.model.attn_resolutions = (16,)
    c.model.num_heads = 1
    c.model.dropout = 0.1
    c.model.norm_groups = 32
    c.model.dtype = "float32"         # compute dtype; "bfloat16" keeps fp32 master weights

    c.diffusion = ml_collections.ConfigDict()
    c.diffusion.timesteps = 1000
    c.diffusion.schedule = "linear"   # "linear" (Ho et al.) | "cosine" (Nichol & Dhariwal)
    c.diffusion.prediction = "eps"    # "eps" | "v"
    c.diffusion.cfg_drop = 0.0        # label dropout for classifier-free guidance

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.lr = 2e-4
    c.optimizer.end_lr = 2e-4
    c.optimizer.schedule = "constant"
    c.optimizer.warmup_steps = 5000
    c.optimizer.decay_steps = 800000
    c.optimizer.decay_rate = 1.0
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    c.optimizer.eps = 1e-8
    c.optimizer.weight_decay = 0.0
    c.optimizer.decay_mask = "all"
    c.optimizer.clip_norm = 1.0
    c.optimizer.grad_accum = 1
    c.optimizer.ema_decay = 0.9999    # evaluators see the EMA weights

    c.train = ml_collections.ConfigDict()
    c.train.steps = 800000
    c.train.log_every = 100
    c.train.progress = True

    c.eval = ml_collections.ConfigDict()
    c.eval.every = 50000
    c.eval.num_batches = 20           # validation loss on held-out t10k images
    c.eval.batch_size = 256
    c.eval.grid_samples = 64          # PNG grid at workdir/samples/step_XXXXXX.png; 0 disables
    c.eval.fid_num_samples = 10000    # 0 disables FID
    c.eval.fid_num_reference = 10000
    c.eval.fid_seed = 0
    c.eval.fid_extractor = "classifier"   # or a registered "inception_v3"
    c.eval.fid_classifier_steps = 1500
    c.eval.fid_samplers = ("ancestral:1000", "ddim:50")   # the first is reported as "fid"
    c.eval.fid_cache_dir = ""         # "": $PRETRAINX_FID_CACHE or ~/.cache/pretrainx/fid

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every = 10000
    c.checkpoint.keep = 2
    c.checkpoint.best_metric = "eval/fid"
    c.checkpoint.best_mode = "min"
    c.checkpoint.async_save = True

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1
    c.mesh.fsdp = 1
    c.mesh.tensor = 1

    c.sharding = ml_collections.ConfigDict()
    # logical axis -> mesh axes; the names are those of pretrainx/models/unet.py
    c.sharding.rules = (
        ("batch", ("data", "fsdp")),
        ("conv_h", None),
        ("conv_w", None),
        ("conv_in", "fsdp"),
        ("conv_out", "tensor"),
        ("image_channels", None),
        ("embed", "fsdp"),
        ("mlp", "tensor"),
        ("classes", None),
        ("norm", None),
    )

    c.sample = ml_collections.ConfigDict()
    c.sample.sampler = "ancestral"    # "ancestral" (all T steps) | "ddim"
    c.sample.steps = 50
    c.sample.eta = 0.0                # ddim: 0 deterministic, 1 ancestral-like
    c.sample.variance = "beta"        # ancestral: "beta" (Ho et al.) | "posterior"
    c.sample.clip_x0 = True
    c.sample.guidance = 1.0           # classifier-free guidance scale; 1 = plain conditional
    c.sample.num_samples = 64
    c.sample.seed = 0
    c.sample.batch_size = 1000        # images per jitted sampler call

    if arg == "cond":
        c.model.num_classes = 10
        c.diffusion.cfg_drop = 0.1
        c.sample.guidance = 2.0
    elif arg == "jpeg":
        c.data.kind = "image_archive"
        c.data.path = os.path.normpath(os.path.join(_SHARED, "cifar10-test-jpeg"))
        c.data.heldout_fraction = 0.1     # 9000 train / 1000 held out, a fixed split
        c.eval.fid_num_samples = 1000
        c.eval.fid_num_reference = 9000
    elif arg:
        raise ValueError(f"unknown variant {arg!r} of cifar10_ddpm (known: cond, jpeg)")
    return c
