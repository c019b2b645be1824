"""A tiny class-conditional DDPM (or flow) on scikit-learn's bundled 8x8 digits: a pipeline check.

  pretrainx train --config configs/diffusion/digits_smoke.py:smoke --workdir /tmp/digits_smoke
  pretrainx train --config configs/diffusion/digits_smoke.py:flow,smoke --workdir /tmp/digits_flow
  pretrainx train --config configs/diffusion/digits_smoke.py --workdir workdirs/digits_ddpm
  pretrainx sample --workdir /tmp/digits_smoke --sampler ddim --steps 20 --guidance 2

No files needed (the digits ship with scikit-learn). `:smoke` (and `:flow,smoke`, the same with the
flow objective) trains a 0.18M-parameter UNet for 300 steps on CPU in about a minute and its loss
falls; the default variant trains longer and reports a (tiny-sample) classifier-feature FID.
T = 200 steps (the linear schedule is rescaled by 1000/T so alpha_bar_T stays small).
"""
from pretrainx.config import images, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke", "flow", "flow,smoke")
    return images.digits("flow" if "flow" in flags else "ddpm", flags)
