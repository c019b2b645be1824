"""Few-step generation on the 8x8 digits (issue 12): the shared protocol and the two baselines.

  pretrainx train --config configs/diffusion/digits_few_step.py --workdir workdirs/fewstep_flow
  pretrainx train --config configs/diffusion/digits_few_step.py:ddpm --workdir workdirs/fewstep_ddpm
  python experiments/few_step_fid.py workdirs/fewstep_flow   # FID at 1, 2, 4, 32 steps

The shortcut and MeanFlow runs (digits_shortcut.py, digits_meanflow.py) load this file, so all
four share the UNet (digits_smoke's 1.0M-parameter class-conditional one, 10 % label dropout),
optimiser, EMA, data split and FID protocol; only the objective and the training steps differ
(experiments/few_step.md sets the steps so every method spends the same training FLOPs).

FID protocol (>= 1,000 generated samples, the floor at the same counts): the digits have 1,797
images; 1,000 train the generator and 797 are held out (data.heldout_fraction = 797/1797). The FID
feature classifier is trained on, and the reference statistics made from, the 797 held-out digits
(eval.fid_reference_split = "heldout"); 1,000 generated samples (labels balanced, EMA weights) are
scored against them, and the floor is the generator's 1,000 training digits against the same
reference: what copying the training set would score. (With the default roles, 797 training
digits as reference and classifier data, the first runs scored flow's 32 Euler steps at 3.3 and
DDIM-50 at 4.0 under a "floor" of 8.9: the small training set is memorised and rewarded.)
digits_smoke.py's 180-image split allows a floor of only 180 images.
"""
import os

from pretrainx.config import load as config_lib

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
    c.data.heldout_fraction = 797 / 1797       # 797 held out, 1,000 for training
    c = config_lib.override(c, steps_overrides(STEPS))
    c.eval.num_batches = 12            # validation loss on 768 of the 797 held-out digits
    c.eval.fid_num_samples = 1000      # and the floor: the 1,000 training digits
    c.eval.fid_reference_split = "heldout"
    c.eval.fid_num_reference = 0       # all 797 held-out digits
    c.eval.fid_samplers = (("ddim:50",) if arg == "ddpm"
                           else ("euler:32", "euler:4", "euler:2", "euler:1"))
    c.sample.guidance = 1.0            # plain conditional sampling: one network call a step
    c.sample.steps = 50 if arg == "ddpm" else 32
    c.eval.grid_samples = 100
    return c
