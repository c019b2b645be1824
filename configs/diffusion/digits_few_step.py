"""Few-step generation on the 8x8 digits (issue 12): the shared protocol and the two baselines.

  pretrainx train --config configs/diffusion/digits_few_step.py --workdir workdirs/fewstep_flow
  pretrainx train --config configs/diffusion/digits_few_step.py:ddpm --workdir workdirs/fewstep_ddpm
  python experiments/few_step_fid.py workdirs/fewstep_flow   # FID at 1, 2, 4, 32 steps

The shortcut and MeanFlow runs (digits_shortcut.py, digits_meanflow.py) load this file, so all
four share the UNet (digits_smoke's 1.0M-parameter class-conditional one, 10 % label dropout),
optimiser, EMA, data split and FID protocol; only the objective and the training steps differ
(experiments/few_step.md sets the steps so every method spends the same training FLOPs).

FID protocol (>= 1,000 generated samples, the floor at the same counts): the digits have 1,797
images, so 1,000 are held out (data.heldout_fraction = 1000/1797) and the other 797 train both the
generator and the FID feature classifier and make the reference statistics; 1,000 generated
samples (labels balanced, EMA weights) are scored against them and the floor is the 1,000
held-out digits against the same reference. digits_smoke.py's 180-image split would have allowed
a floor of only 180 images.
"""
import os

from pretrainx import config_lib

VARIANTS = ("", "flow", "ddpm")
STEPS = 3000                           # the flow run's budget (digits_smoke's :flow length)


def steps_overrides(steps: int) -> dict:
    """Train for ``steps``: the LR schedule's length, and one eval (FID at every sampler) and one
    checkpoint at the end."""
    return {"train.steps": steps, "optimizer.decay_steps": steps, "eval.every": steps,
            "checkpoint.every": steps}


def get_config(arg: str = ""):
    if arg not in VARIANTS:
        raise ValueError(f"unknown variant {arg!r} of digits_few_step (known: flow, ddpm)")
    base = "digits_smoke.py:" + ("" if arg == "ddpm" else "flow")
    c = config_lib.load(os.path.join(os.path.dirname(__file__), base))
    c.data.heldout_fraction = 1000 / 1797      # 1,000 held out, 797 for training
    c = config_lib.override(c, steps_overrides(STEPS))
    c.eval.num_batches = 8             # validation loss on 512 of the held-out digits
    c.eval.fid_num_samples = 1000
    c.eval.fid_num_reference = 0       # all 797 training digits
    c.eval.fid_samplers = (("ddim:50",) if arg == "ddpm"
                           else ("euler:32", "euler:4", "euler:2", "euler:1"))
    c.sample.guidance = 1.0            # plain conditional sampling: one network call a step
    c.sample.steps = 50 if arg == "ddpm" else 32
    c.eval.grid_samples = 100
    return c
