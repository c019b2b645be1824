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
import os

from pretrainx.config import load as config_lib

VARIANTS = ("", "smoke", "flow", "flow_smoke")


def get_config(arg: str = ""):
    if arg not in VARIANTS:
        raise ValueError(f"unknown variant {arg!r} of digits_smoke (known: smoke, flow, flow_smoke)")
    # The Fashion-MNIST recipe, class-conditional (":cond"), shrunk to 8x8 digits; every field
    # not set here is fashion_mnist_ddpm's (or fashion_mnist_flow's for the flow variants).
    base = "fashion_mnist_flow.py" if arg.startswith("flow") else "fashion_mnist_ddpm.py"
    c = config_lib.load(os.path.join(os.path.dirname(__file__), base) + ":cond")
    c.batch_size = 64
    c.data.kind = "digits"
    del c.data.path
    c.data.heldout_fraction = 0.1     # a fixed 180-image held-out split
    c.data.image_size = 0             # 0: native 8x8
    c.data.random_flip = False        # digits are not mirror-symmetric
    c.model.image_shape = (8, 8, 1)
    c.model.num_classes = 10          # class-conditional: exercises guidance
    c.model.ch = 32
    c.model.ch_mult = (1, 2)
    c.model.attn_resolutions = (4,)
    c.model.dropout = 0.0
    if "diffusion" in c:
        c.diffusion.timesteps = 200
    c.optimizer.lr = 1e-3
    c.optimizer.end_lr = 1e-4
    c.optimizer.schedule = "cosine"
    c.optimizer.warmup_steps = 50
    c.optimizer.decay_steps = 3000
    c.optimizer.ema_decay = 0.995     # evaluators see the EMA weights
    c.train.steps = 3000
    c.eval.every = 1000
    c.eval.num_batches = 2            # validation loss on the held-out digits
    c.eval.batch_size = 64
    c.eval.fid_num_samples = 180      # 0 disables FID; all 180 held-out images
    c.eval.fid_num_reference = 0      # 0: all 1617 training images
    c.eval.fid_classifier_steps = 500
    c.eval.fid_samplers = ("euler:20",) if arg.startswith("flow") else ("ddim:20",)
    c.checkpoint.every = 1000
    c.sample.steps = 20
    c.sample.guidance = 2.0           # classifier-free guidance scale; 1 = plain conditional
    c.sample.batch_size = 256         # images per jitted sampler call
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
    return c
