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
import os

import ml_collections

_SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


def get_config(arg: str = ""):
    c = ml_collections.ConfigDict()
    c.objective = "ddpm"
    c.seed = 0
    c.batch_size = 128                # global: split over the mesh's data and fsdp axes

    c.data = ml_collections.ConfigDict()
    c.data.kind = "idx"
    c.data.path = os.path.normpath(os.path.join(_SHARED, "fashion-mnist"))
    c.data.pad = 0                    # pixels of background added on each side
    c.data.image_size = 0             # 0: native 28x28
    c.data.random_flip = True         # left-right flips are label-preserving for clothes

    c.model = ml_collections.ConfigDict()
    c.model.image_shape = (28, 28, 1)
    c.model.num_classes = 0           # 0: unconditional
    c.model.ch = 64
    c.model.ch_mult = (1, 2, 2)
    c.model.num_res_blocks = 2
    c.model.attn_resolutions = (14,)
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
    c.optimizer.warmup_steps = 1000
    c.optimizer.decay_steps = 30000
    c.optimizer.decay_rate = 1.0
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    c.optimizer.eps = 1e-8
    c.optimizer.weight_decay = 0.0
    c.optimizer.decay_mask = "all"
    c.optimizer.clip_norm = 1.0
    c.optimizer.grad_accum = 1
    c.optimizer.ema_decay = 0.999     # evaluators see the EMA weights
    c.optimizer.mu_dtype = "float32"   # Adam's first moment; "bfloat16" saves memory traffic

    c.train = ml_collections.ConfigDict()
    # Random bits of each step (dropout, noise): "threefry" | "rbg" | "unsafe_rbg" (XLA's
    # RngBitGenerator: much cheaper dropout on GPUs; other bits, not mesh-invariant)
    c.train.rng_impl = "threefry"
    c.train.steps = 30000
    c.train.log_every = 100
    c.train.progress = True

    c.eval = ml_collections.ConfigDict()
    c.eval.every = 5000
    c.eval.num_batches = 20           # validation loss on held-out t10k images
    c.eval.batch_size = 256
    c.eval.grid_samples = 64          # PNG grid at workdir/samples/step_XXXXXX.png; 0 disables
    c.eval.fid_num_samples = 5000     # 0 disables FID
    c.eval.fid_num_reference = 10000
    c.eval.fid_seed = 0
    c.eval.fid_extractor = "classifier"   # or a registered "inception_v3"
    c.eval.fid_classifier_steps = 1500
    c.eval.fid_samplers = ("ddim:50", "ancestral:1000")   # the first is reported as "fid"
    c.eval.fid_extra_at = "final"     # the samplers after the first: "final" (last eval) | "every"
    c.eval.fid_cache_dir = ""         # "": $PRETRAINX_FID_CACHE or ~/.cache/pretrainx/fid

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every = 5000
    c.checkpoint.keep = 2
    c.checkpoint.best_metric = "eval/fid"
    c.checkpoint.best_mode = "min"
    c.checkpoint.async_save = True

    c.init_from = ml_collections.ConfigDict()   # start from another run's arrays (init_from.py)
    c.init_from.workdir = ""          # "": from scratch; a run's workdir: load it (unless resuming)
    c.init_from.step = "latest"       # "latest" | "best" | a step number, e.g. "2000"
    c.init_from.mapping = (("ema_params", "params"),)   # (source subtree, target subtree) pairs

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
    c.sample.sampler = "ddim"         # "ancestral" (all T steps) | "ddim"
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
    elif arg == "smoke":              # a CPU-sized check of the whole pipeline
        c.batch_size = 32
        c.model.ch = 32
        c.model.ch_mult = (1, 2)
        c.model.num_res_blocks = 1
        c.train.steps = 200
        c.train.log_every = 20
        c.eval.every = 200
        c.eval.num_batches = 2
        c.eval.fid_num_samples = 0
        c.eval.grid_samples = 16
        c.checkpoint.every = 200
        c.checkpoint.best_metric = "val/loss"
        c.optimizer.ema_decay = 0.98  # 0.999 would keep the EMA (val, grid) near the init in 200 steps
        c.sample.steps = 20
    elif arg:
        raise ValueError(f"unknown variant {arg!r} of fashion_mnist_ddpm (known: cond, smoke)")
    return c
