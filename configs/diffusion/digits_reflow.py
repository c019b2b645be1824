"""Reflow (Liu et al. 2022) on the 8x8 digits: a 2-rectified flow trained on (noise, sample) pairs
of the base flow run, and its optional 1-step distillation; digits_few_step.py's protocol.

  pretrainx generate-couplings --workdir workdirs/fs_flow_s0 --out workdirs/reflow_pairs_s0 \
      --num 2048 --seed 0 --sampler euler --steps 32
  pretrainx train --config configs/diffusion/digits_reflow.py --workdir workdirs/fs_reflow_s0
  pretrainx train --config configs/diffusion/digits_reflow.py:distill --workdir workdirs/fs_distill_s0
  pretrainx train --config configs/diffusion/digits_reflow.py:smoke --workdir /tmp/digits_reflow \
      --config.data.couplings=DIR --config.init_from.workdir=RUN

"" trains the flow objective on the fixed pairs in data.couplings (``pretrainx/tools/couplings.py``),
starting from the base run's EMA weights (init_from); validation loss and FID use the real digits
as in every few-step run. ":distill" starts from the reflow run and trains only at t = 1 on the
same pairs (flow.time_sampling = "end": one Euler step maps a pair's noise to its sample), the
paper's L2 distillation. The paper's setting kept: pairs from the 1-rectified flow's ODE, the
reflow initialised from it, uniform t. Scaled down: 2,048 pairs from 32 Euler steps (the paper:
millions, RK45), 600 steps at Adam 3e-4 cosine (a fine-tune; the base run trained at 1e-3).
Budget (experiments/few_step.md counts it): the base run's 3000 steps, plus the pairs (2,048 x 32
network evaluations, forward only), plus these steps.
":smoke": digits_smoke.py's :flow,smoke with the same fields (tests give the paths).
"""
from pretrainx.config import base, images, variants

STEPS = 600
DISTILL_STEPS = 300
BASE_RUN = "workdirs/fs_flow_s0"
PAIRS = "workdirs/reflow_pairs_s0"
REFLOW_RUN = "workdirs/fs_reflow_s0"


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "distill", "smoke")
    if "smoke" in flags:              # tests give the paths
        return images.digits("flow", {"smoke"})
    distill = "distill" in flags
    c = images.few_step("flow", steps=DISTILL_STEPS if distill else STEPS)
    c = base.change(c, {"data.couplings": PAIRS,   # the training pairs; the real digits still validate
                        "init_from.workdir": REFLOW_RUN if distill else BASE_RUN,
                        "optimizer.lr": 3e-4})
    if distill:
        c = base.change(c, {"flow.time_sampling": "end",   # t = 1 only
                            "flow.cfg_drop": 0.0,   # the pairs are conditional samples (guidance 1)
                            "eval.fid_samplers": ("euler:1",), "sample.steps": 1})
    return c
