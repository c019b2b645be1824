"""Image family presets: data kinds, the UNet and the DiT, the four image objectives' sections,
FID evaluation and sampling, and whole runs at the size of the reference recipes in
``configs/diffusion/`` (``fashion_mnist``, ``digits``, ``few_step``).

The objective is a parameter of each run, not a patch: ``fashion_mnist("flow", flags)`` builds the
flow run with the same UNet, data, optimiser and FID protocol as ``fashion_mnist("ddpm", flags)``,
so their FIDs compare objectives. Flags: ``cond`` (class-conditional, 10 % label dropout,
guided sampling), ``smoke`` (CPU-sized).
"""
from __future__ import annotations

import ml_collections

from pretrainx.config import base, text

OBJECTIVES = ("ddpm", "flow", "shortcut", "meanflow")


def idx_data(path: str) -> ml_collections.ConfigDict:
    """MNIST-format idx files (Fashion-MNIST); the t10k images are held out."""
    return ml_collections.ConfigDict(dict(
        kind="idx", path=path,
        pad=0,                        # pixels of background added on each side
        image_size=0,                 # 0: native size
        random_flip=True,             # left-right flips are label-preserving for clothes
        couplings=""))                # reflow: a folder of fixed (noise, sample) training pairs


def digits_data(heldout_fraction: float = 0.1) -> ml_collections.ConfigDict:
    """scikit-learn's bundled 8x8 digits: no file needed."""
    return ml_collections.ConfigDict(dict(
        kind="digits", pad=0, image_size=0,
        heldout_fraction=heldout_fraction,   # a fixed held-out split (0.1: 180 images)
        random_flip=False,            # digits are not mirror-symmetric
        couplings=""))                # reflow: a folder of fixed (noise, sample) training pairs


def image_archive_data(path: str, heldout_fraction: float = 0.1) -> ml_collections.ConfigDict:
    """A folder of class folders, or of tar/tar.gz archives, of PNG/JPEG images."""
    return ml_collections.ConfigDict(dict(
        kind="image_archive", path=path, pad=0, image_size=0,
        heldout_fraction=heldout_fraction,   # a fixed held-out split by seed 0
        random_flip=True, couplings=""))


def tfds_images_data(name: str) -> ml_collections.ConfigDict:
    """An image data set prepared for TFDS beforehand (nothing is downloaded)."""
    return ml_collections.ConfigDict(dict(
        kind="tfds_images", tfds_name=name,
        tfds_data_dir="",             # "": TFDS's default (~/tensorflow_datasets)
        train_split="train", heldout_split="test", path="", pad=0, image_size=0, random_flip=True,
        image_key="image", label_key="label",   # the fields of each TFDS record
        couplings=""))   # the fields of each TFDS record


def unet_model() -> ml_collections.ConfigDict:
    """Ho et al.'s UNet at 28x28 grey images: 6.5M parameters."""
    m = ml_collections.ConfigDict()
    m.name = "unet"                   # "unet" (models/unet.py) | "dit" (models/dit.py)
    m.image_shape = (28, 28, 1)
    m.num_classes = 0                 # 0: unconditional
    m.ch = 64
    m.ch_mult = (1, 2, 2)             # 28 -> 14 -> 7
    m.num_res_blocks = 2
    m.attn_resolutions = (14,)
    m.num_heads = 1
    m.dropout = 0.1
    m.norm_groups = 32
    m.dtype = "float32"               # compute dtype; "bfloat16" keeps fp32 master weights
    return m


def dit_model(model: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A DiT (Peebles & Xie 2023) for ``model``'s images: patch 2, hidden 256, 6 blocks, 4 heads."""
    return ml_collections.ConfigDict(dict(
        name="dit", image_shape=model.image_shape, num_classes=model.num_classes, dtype=model.dtype,
        patch_size=2, hidden_size=256, depth=6, num_heads=4, mlp_ratio=4))


def unet_rules(*extra) -> tuple:
    """Logical axis -> mesh axes; the names are those of models/unet.py."""
    return (("batch", ("data", "fsdp")), ("conv_h", None), ("conv_w", None), ("conv_in", "fsdp"),
            ("conv_out", "tensor"), ("image_channels", None), ("embed", "fsdp"), ("mlp", "tensor"),
            ("classes", None), ("norm", None)) + extra


def objective_section(objective: str, cfg_drop: float) -> ml_collections.ConfigDict:
    """The section ``objective`` reads; ``cfg_drop``: label dropout for classifier-free guidance."""
    if objective == "ddpm":
        return ml_collections.ConfigDict(dict(
            timesteps=1000,
            schedule="linear",        # "linear" (Ho et al.) | "cosine" (Nichol & Dhariwal)
            prediction="eps",         # "eps" | "v"
            cfg_drop=cfg_drop))
    if objective == "flow":           # x_t = (1 - t) x_0 + t eps, velocity regression
        return ml_collections.ConfigDict(dict(
            time_sampling="uniform",  # "uniform" | "logit_normal" (Esser et al. 2024) | "end" (t = 1)
            logit_mean=0.0, logit_std=1.0, cfg_drop=cfg_drop))
    if objective == "shortcut":       # Frans et al. 2024 (configs/diffusion/digits_shortcut.py)
        return ml_collections.ConfigDict(dict(
            max_steps=128,            # M: step sizes 1, 1/2, ..., 1/128 (1/128 is queried as d = 0)
            bootstrap_fraction=0.25,  # k: share of the batch with self-consistency targets
            guidance=1.0,             # != 1: guided flow in the smallest-level targets (bootstrap_cfg)
            cfg_drop=cfg_drop))
    m = ml_collections.ConfigDict()   # meanflow: Geng et al. 2025 (configs/diffusion/digits_meanflow.py)
    m.mean, m.std = -0.6, 1.6         # t ~ logit-normal(mean, std)
    m.r_mean, m.r_std = -4.0, 1.6     # r ~ logit-normal, clamped to r <= t (None: the paper's
                                      # two draws from (mean, std), t the larger)
    m.equal_fraction = 0.25           # share of rows with r = t (plain flow matching)
    m.norm_p, m.norm_eps = 0.75, 1e-3  # adaptive weight 1 / (||err||^2 + eps)^p
    m.omega, m.kappa = 1.0, 0.0       # trained-in guidance (eq. 19); 1, 0: none
    m.time_scale = 1.0                # t and t - r enter the embedding unscaled (official code)
    m.cfg_drop = cfg_drop
    return m


def section_name(objective: str) -> str:
    return "diffusion" if objective == "ddpm" else objective


def fid_samplers(objective: str) -> tuple:
    """(sampler:steps, ...) scored at each eval; the first is reported as "fid"."""
    if objective == "ddpm":
        return ("ddim:50", "ancestral:1000")
    name = "euler" if objective == "flow" else objective
    return tuple(f"{name}:{n}" for n in ((32, 4, 2, 1) if objective == "flow" else (1, 2, 4, 32)))


def image_eval(objective: str) -> ml_collections.ConfigDict:
    e = base.evaluation()
    e.every = 5000
    e.num_batches = 20                # validation loss on held-out images
    e.batch_size = 256
    e.grid_samples = 64               # PNG grid at workdir/samples/step_XXXXXX.png; 0 disables
    e.fid_num_samples = 5000          # 0 disables FID
    e.fid_num_reference = 10000       # 0: all the reference split's images
    e.fid_reference_split = "train"   # "train" | "heldout": the images the FID compares against
    e.fid_seed = 0
    # the FID feature classifier; FIDs compare only under one: "classifier_fast" (batch 64, < 3
    # min on 2 CPU cores), "classifier" (batch 128: the tables before #25, with
    # fid_classifier_steps=1500 on Fashion-MNIST: ~17 min) or a registered "inception_v3"
    e.fid_extractor = "classifier_fast"
    e.fid_classifier_steps = 400
    e.fid_samplers = fid_samplers(objective)
    e.fid_extra_at = "final"          # the samplers after the first: "final" (last eval) | "every"
    e.fid_cache_dir = ""              # "": $PRETRAINX_FID_CACHE or ~/.cache/pretrainx/fid
    return e


def image_sample(objective: str) -> ml_collections.ConfigDict:
    s = ml_collections.ConfigDict()
    if objective == "ddpm":
        s.sampler = "ddim"            # "ancestral" (all T steps) | "ddim"
        s.steps = 50
        s.eta = 0.0                   # ddim: 0 deterministic, 1 ancestral-like
        s.variance = "beta"           # ancestral: "beta" (Ho et al.) | "posterior"
        s.clip_x0 = True
    elif objective == "flow":
        s.sampler = "euler"           # "euler" | "heun" (2 network calls a step)
        s.steps = 32
    else:                             # shortcut: d = 1/steps; meanflow: u over intervals of 1/steps
        s.sampler = objective         # ("euler": the d = 0 / r = t flow)
        s.steps = 1
    s.guidance = 1.0                  # classifier-free guidance scale; 1 = plain conditional
    s.num_samples = 64
    s.seed = 0
    s.batch_size = 1000               # images per jitted sampler call
    return s


def image_run(objective: str, data, model, *, cfg_drop: float = 0.0) -> ml_collections.ConfigDict:
    """Every section of an image run: Ho et al.'s optimiser (Adam 2e-4 after 1000 warm-up steps,
    clip 1.0, EMA 0.999), 30k steps of batch 128, FID at every eval on the EMA weights."""
    c = base.runner(objective, batch_size=128)
    c.data = data
    c.model = model
    c[section_name(objective)] = objective_section(objective, cfg_drop)
    c.eval = image_eval(objective)
    c.sample = image_sample(objective)
    c.init_from.mapping = (("ema_params", "params"),)   # the EMA weights are the model
    c.sharding = ml_collections.ConfigDict({"rules": unet_rules()})
    c = base.change(c, {"optimizer.lr": 2e-4, "optimizer.end_lr": 2e-4, "optimizer.schedule": "constant",
                        "optimizer.warmup_steps": 1000, "optimizer.decay_rate": 1.0,
                        "optimizer.decay_mask": "all", "optimizer.ema_decay": 0.999,
                        "checkpoint.best_metric": "eval/fid"})
    return base.length(c, 30000, every=5000)


def fashion_mnist(objective: str, flags=frozenset()) -> ml_collections.ConfigDict:
    """configs/diffusion/fashion_mnist_ddpm.py's run with ``objective``."""
    cond = "cond" in flags
    c = image_run(objective, idx_data(text.shared_data("fashion-mnist")), unet_model(),
                  cfg_drop=0.1 if cond else 0.0)
    if cond:
        c = base.change(c, {"model.num_classes": 10, "sample.guidance": 2.0})
    if "smoke" in flags:              # a CPU-sized check of the whole pipeline
        c = base.change(c, {"batch_size": 32, "model.ch": 32, "model.ch_mult": (1, 2),
                            "model.num_res_blocks": 1, "train.steps": 200, "train.log_every": 20,
                            "eval.every": 200, "eval.num_batches": 2, "eval.fid_num_samples": 0,
                            "eval.grid_samples": 16, "checkpoint.every": 200,
                            "checkpoint.best_metric": "val/loss",
                            "optimizer.ema_decay": 0.98})   # 0.999 would keep the EMA near the init
        if objective in ("ddpm", "flow"):
            c.sample.steps = 20
    return _guidance_trained_in(c, objective)


def _guidance_trained_in(c, objective: str):
    """Shortcut and meanflow sample unguided: any guidance is trained in."""
    if objective in ("shortcut", "meanflow"):
        c.sample.guidance = 1.0
    return c


def digits(objective: str, flags=frozenset()) -> ml_collections.ConfigDict:
    """configs/diffusion/digits_smoke.py: the Fashion-MNIST recipe, class-conditional, shrunk to
    8x8 digits (1.0M-parameter UNet; ``smoke``: 0.18M, 300 steps, about a minute on 2 CPU cores)."""
    c = fashion_mnist(objective, {"cond"})
    c.data = digits_data()
    if objective == "ddpm":           # the linear schedule is rescaled by 1000/T
        c.diffusion.timesteps = 200
    c = base.change(c, {
        "batch_size": 64, "model.image_shape": (8, 8, 1), "model.ch": 32, "model.ch_mult": (1, 2),
        "model.attn_resolutions": (4,), "model.dropout": 0.0,
        "optimizer.lr": 1e-3, "optimizer.end_lr": 1e-4, "optimizer.schedule": "cosine",
        "optimizer.warmup_steps": 50, "optimizer.ema_decay": 0.995,
        "eval.num_batches": 2, "eval.batch_size": 64,
        "eval.fid_num_samples": 180,  # all 180 held-out images
        "eval.fid_num_reference": 0, "eval.fid_classifier_steps": 500,
        # the digits' recorded FIDs (experiments/few_step.md, the registry's few-step pins and
        # diffusion_fashion_mnist.md's digits table) were all scored under this network
        "eval.fid_extractor": "classifier",
        "sample.batch_size": 256})
    if objective in ("ddpm", "flow"):
        c = base.change(c, {"sample.steps": 20, "eval.fid_samplers": (f"{c.sample.sampler}:20",)})
    c = base.length(c, 3000, every=1000)
    if "smoke" in flags:
        c = base.change(c, {"model.ch": 16, "model.num_res_blocks": 1, "optimizer.lr": 2e-3,
                            "optimizer.end_lr": 2e-4, "optimizer.warmup_steps": 20,
                            "optimizer.ema_decay": 0.98, "train.log_every": 25,
                            "eval.fid_num_samples": 0,   # the classifier would cost more than the run
                            "eval.grid_samples": 20, "checkpoint.best_metric": "val/loss",
                            "checkpoint.async_save": False})
        c = base.length(c, 300, every=300)
    return _guidance_trained_in(c, objective)


def few_step(objective: str, steps: int = 3000) -> ml_collections.ConfigDict:
    """configs/diffusion/digits_few_step.py's protocol for ``objective``: 1,000 training digits,
    797 held out as the FID reference, FID of 1,000 samples at each sampler, unguided."""
    c = digits(objective)
    c.data.heldout_fraction = 797 / 1797
    samplers = {"ddpm": ("ddim:50",), "flow": ("euler:32", "euler:4", "euler:2", "euler:1")}
    c = base.change(c, {"eval.num_batches": 12,          # 768 of the 797 held-out digits
                        "eval.fid_num_samples": 1000,    # and the floor: the 1,000 training digits
                        "eval.fid_reference_split": "heldout",
                        "eval.fid_num_reference": 0,     # all 797 held-out digits
                        "eval.fid_samplers": samplers.get(objective, fid_samplers(objective)),
                        "eval.grid_samples": 100,
                        "sample.guidance": 1.0})         # plain conditional: one call a step
    if objective in ("ddpm", "flow"):
        c.sample.steps = 50 if objective == "ddpm" else 32
    return base.length(c, steps, every=steps)
