"""Shortcut model (Frans et al. 2024) on the 8x8 digits: the few-step experiment and a CPU smoke run.

  pretrainx train --config configs/diffusion/digits_shortcut.py --workdir workdirs/fewstep_shortcut
  pretrainx train --config configs/diffusion/digits_shortcut.py:smoke --workdir /tmp/digits_shortcut
  pretrainx sample --workdir /tmp/digits_shortcut --sampler shortcut --steps 1

"" is digits_few_step.py's protocol (UNet, optimiser, EMA, split, FID) with the shortcut
objective; `:smoke` is digits_smoke.py's `:flow,smoke` (0.18M UNet, 300 steps, about a minute on 2
CPU cores) with it. The paper's hyperparameters kept: M = 128 (smallest step 1/128), power-of-two
step sizes, 1/4 of the batch on self-consistency targets, 10 % label dropout. Scaled down: the
DiT-B and batch 64-256 of the paper -> a 1.0M (smoke 0.18M) UNet at batch 64; Adam 1e-3 cosine
instead of AdamW 1e-4 (these small UNets train at digits_smoke's rate); EMA 0.995 (0.999 in the
paper's code) for runs of 1e3-1e4 steps; targets from the live weights (contract: no EMA in
loss_fn). Guidance: off (shortcut.guidance = 1) so the table compares unguided samplers.
"""
from pretrainx.config import images, variants

# The flow baseline's 3000 steps x 7.23 GFLOP in steps of 8.44 GFLOP (the same training FLOPs;
# pretrainx flops counts them).
STEPS = 2570


def get_config(arg: str = ""):
    if variants.parse(arg, __file__, "smoke"):
        return images.digits("shortcut", {"smoke"})
    return images.few_step("shortcut", steps=STEPS)
