"""A tiny class-conditional DDPM (or flow) on scikit-learn's bundled 8x8 digits: a pipeline check.

  pretrainx train --config configs/diffusion/digits_smoke.py:smoke --workdir /tmp/digits_smoke
  pretrainx train --config configs/diffusion/digits_smoke.py:flow_smoke --workdir /tmp/digits_flow
  pretrainx train --config configs/diffusion/digits_smoke.py --workdir workdirs/digits_ddpm
  pretrainx sample --workdir /tmp/digits_smoke --sampler ddim --steps 20 --guidance 2

No files needed (the digits ship with scikit-learn). `:smoke` (and `:flow_smoke`, the same with the
flow objective) trains a 0.18M-parameter UNet for 300 steps on CPU in about a minute and its loss
falls; the default variant trains longer and reports a (tiny-sample) classifier-feature FID.
T = 200 steps (the linear schedule is rescaled by 1000/T so alpha_bar_T stays small).
"""
import ml_collections


def get_config(arg: str = ""):
    c = ml_collections.ConfigDict()
    c.objective = "ddpm"
    c.seed = 0
    c.batch_size = 64                 # global: split over the mesh's data and fsdp axes

    c.data = ml_collections.ConfigDict()
    c.data.kind = "digits"
    c.data.heldout_fraction = 0.1     # a fixed 180-image held-out split
    c.data.pad = 0                    # pixels of background added on each side
    c.data.image_size = 0             # 0: native 8x8
    c.data.random_flip = False        # digits are not mirror-symmetric

    c.model = ml_collections.ConfigDict()
    c.model.image_shape = (8, 8, 1)
    c.model.num_classes = 10          # class-conditional: exercises guidance
    c.model.ch = 32
    c.model.ch_mult = (1, 2)
    c.model.num_res_blocks = 2
    c.model.attn_resolutions = (4,)
    c.model.num_heads = 1
    c.model.dropout = 0.0
    c.model.norm_groups = 32
    c.model.dtype = "float32"         # compute dtype; "bfloat16" keeps fp32 master weights

    c.diffusion = ml_collections.ConfigDict()
    c.diffusion.timesteps = 200
    c.diffusion.schedule = "linear"   # "linear" (Ho et al.) | "cosine" (Nichol & Dhariwal)
    c.diffusion.prediction = "eps"    # "eps" | "v"
    c.diffusion.cfg_drop = 0.1        # label dropout for classifier-free guidance

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.lr = 1e-3
    c.optimizer.end_lr = 1e-4
    c.optimizer.schedule = "cosine"
    c.optimizer.warmup_steps = 50
    c.optimizer.decay_steps = 3000
    c.optimizer.decay_rate = 1.0
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    c.optimizer.eps = 1e-8
    c.optimizer.weight_decay = 0.0
    c.optimizer.decay_mask = "all"
    c.optimizer.clip_norm = 1.0
    c.optimizer.grad_accum = 1
    c.optimizer.ema_decay = 0.995     # evaluators see the EMA weights

    c.train = ml_collections.ConfigDict()
    c.train.steps = 3000
    c.train.log_every = 100
    c.train.progress = True

    c.eval = ml_collections.ConfigDict()
    c.eval.every = 1000
    c.eval.num_batches = 2            # validation loss on the held-out digits
    c.eval.batch_size = 64
    c.eval.grid_samples = 64          # PNG grid at workdir/samples/step_XXXXXX.png; 0 disables
    c.eval.fid_num_samples = 180      # 0 disables FID; all 180 held-out images
    c.eval.fid_num_reference = 0      # 0: all 1617 training images
    c.eval.fid_seed = 0
    c.eval.fid_extractor = "classifier"   # or a registered "inception_v3"
    c.eval.fid_classifier_steps = 500
    c.eval.fid_samplers = ("ddim:20",)   # the first is reported as "fid"
    c.eval.fid_cache_dir = ""         # "": $PRETRAINX_FID_CACHE or ~/.cache/pretrainx/fid

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every = 1000
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
    c.sample.sampler = "ddim"         # "ancestral" (all T steps) | "ddim"
    c.sample.steps = 20
    c.sample.eta = 0.0                # ddim: 0 deterministic, 1 ancestral-like
    c.sample.variance = "beta"        # ancestral: "beta" (Ho et al.) | "posterior"
    c.sample.clip_x0 = True
    c.sample.guidance = 2.0           # classifier-free guidance scale; 1 = plain conditional
    c.sample.num_samples = 64
    c.sample.seed = 0
    c.sample.batch_size = 256         # images per jitted sampler call

    if arg.startswith("flow"):        # the same model and data, the flow objective
        c.objective = "flow"
        c.flow = ml_collections.ConfigDict()
        c.flow.time_sampling = "uniform"
        c.flow.cfg_drop = c.diffusion.cfg_drop
        c.sample.sampler = "euler"
        c.eval.fid_samplers = ("euler:20",)
    if arg.endswith("smoke"):         # about a minute on 2 CPU cores; the loss falls
        c.model.ch = 16
        c.model.num_res_blocks = 1
        c.optimizer.lr = 2e-3
        c.optimizer.end_lr = 2e-4
        c.optimizer.warmup_steps = 20
        c.optimizer.decay_steps = 300
        c.optimizer.ema_decay = 0.98
        c.train.steps = 300
        c.train.log_every = 25
        c.eval.every = 300
        c.eval.fid_num_samples = 0    # the classifier would cost more than the run
        c.eval.grid_samples = 20
        c.checkpoint.every = 300
        c.checkpoint.best_metric = "val/loss"
        c.checkpoint.async_save = False
    if arg not in ("", "smoke", "flow", "flow_smoke"):
        raise ValueError(f"unknown variant {arg!r} of digits_smoke (known: smoke, flow, "
                         f"flow_smoke)")
    return c
