"""MeanFlow (Geng et al. 2025) on the 8x8 digits: the few-step experiment and a CPU smoke run.

  pretrainx train --config configs/diffusion/digits_meanflow.py --workdir workdirs/fewstep_meanflow
  pretrainx train --config configs/diffusion/digits_meanflow.py:smoke --workdir /tmp/digits_meanflow
  pretrainx sample --workdir /tmp/digits_meanflow --sampler meanflow --steps 1

"" is digits_few_step.py's protocol (UNet, optimiser, EMA, split, FID) with the meanflow objective;
`:smoke` is digits_smoke.py's `:flow,smoke` (0.18M UNet, 300 steps) with it. The (t, r) sampler,
share of r = t and loss weighting are the authors' pixel-space UNet recipe (their CIFAR-10 code:
t ~ logit-normal(-0.6, 1.6), r ~ logit-normal(-4.0, 1.6) clamped to r <= t, 75 % of rows r != t,
p = 0.75, c = 1e-3), the nearest published setting to small pixel images; their ImageNet latent
DiT recipe is the objective's default (lognorm(-0.4, 1.0) for both, 25 % r != t, p = 1).
Scaled down: the 55M UNet / DiT-B and batch 1024 / 256 -> a 1.0M (smoke 0.18M) UNet at batch 64;
Adam 1e-3 cosine (digits_smoke's) instead of 6e-4 / 1e-4; EMA 0.995 instead of 0.9999; no dropout.
Guidance: off (omega = 1, kappa = 0) so the table compares unguided samplers; the train loss is
the adaptively weighted one (watch train/mse for the raw error).
"""
from pretrainx.config import images, variants

# The flow baseline's 3000 steps x 7.23 GFLOP in steps of 9.67 GFLOP (the same training FLOPs;
# pretrainx flops counts them).
STEPS = 2242


def get_config(arg: str = ""):
    if variants.parse(arg, __file__, "smoke"):
        return images.digits("meanflow", {"smoke"})
    return images.few_step("meanflow", steps=STEPS)
