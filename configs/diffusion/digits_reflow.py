"""Reflow (Liu et al. 2022) on the 8x8 digits: a 2-rectified flow trained on (noise, sample) pairs
of the base flow run, and its optional 1-step distillation; digits_few_step.py's protocol.

  pretrainx generate-couplings --workdir workdirs/fs_flow_s0 --out workdirs/reflow_pairs_s0 \
      --num 2048 --seed 0 --sampler euler --steps 32
  pretrainx train --config configs/diffusion/digits_reflow.py --workdir workdirs/fs_reflow_s0
  pretrainx train --config configs/diffusion/digits_reflow.py:distill --workdir workdirs/fs_distill_s0
  pretrainx train --config configs/diffusion/digits_reflow.py:smoke --workdir /tmp/digits_reflow \
      --config.data.couplings=DIR --config.init_from.workdir=RUN

"" trains the flow objective on the fixed pairs in data.couplings (``pretrainx/objectives/couplings.py``),
starting from the base run's EMA weights (init_from); validation loss and FID use the real digits
as in every few-step run. ":distill" starts from the reflow run and trains only at t = 1 on the
same pairs (flow.time_sampling = "end": one Euler step maps a pair's noise to its sample), the
paper's L2 distillation. The paper's setting kept: pairs from the 1-rectified flow's ODE, the
reflow initialised from it, uniform t. Scaled down: 2,048 pairs from 32 Euler steps (the paper:
millions, RK45), 600 steps at Adam 3e-4 cosine (a fine-tune; the base run trained at 1e-3).
Budget (experiments/few_step.md counts it): the base run's 3000 steps, plus the pairs (2,048 x 32
network evaluations, forward only), plus these steps.
":smoke": digits_smoke.py's :flow_smoke with the same fields (tests give the paths).
"""
import os

from pretrainx.config import load as config_lib

VARIANTS = ("", "distill", "smoke")
STEPS = 600
DISTILL_STEPS = 300
BASE_RUN = "workdirs/fs_flow_s0"
PAIRS = "workdirs/reflow_pairs_s0"
REFLOW_RUN = "workdirs/fs_reflow_s0"


def get_config(arg: str = ""):
    if arg not in VARIANTS:
        raise ValueError(f"unknown variant {arg!r} of digits_reflow (known: distill, smoke)")
    here = os.path.dirname(__file__)
    if arg == "smoke":
        c = config_lib.load(os.path.join(here, "digits_smoke.py:flow_smoke"))
        c.data.couplings = ""
        return c
    c = config_lib.load(os.path.join(here, "digits_few_step.py"))
    c.data.couplings = PAIRS              # the training pairs; the real digits still validate
    c.init_from.workdir = BASE_RUN if arg == "" else REFLOW_RUN
    c.init_from.mapping = (("ema_params", "params"),)
    c.optimizer.lr = 3e-4
    steps = STEPS if arg == "" else DISTILL_STEPS
    if arg == "distill":
        c.flow.time_sampling = "end"      # t = 1 only
        c.flow.cfg_drop = 0.0             # the pairs are conditional samples (guidance 1)
        c.eval.fid_samplers = ("euler:1",)
        c.sample.steps = 1
    c = config_lib.override(c, {"train.steps": steps, "optimizer.decay_steps": steps,
                                "eval.every": steps, "checkpoint.every": steps})
    return c
