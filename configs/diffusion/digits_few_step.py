"""Few-step generation on the 8x8 digits (issue 12): the shared protocol and the two baselines.

  pretrainx train --config configs/diffusion/digits_few_step.py --workdir workdirs/fewstep_flow
  pretrainx train --config configs/diffusion/digits_few_step.py:ddpm --workdir workdirs/fewstep_ddpm
  python experiments/few_step_fid.py workdirs/fewstep_flow   # FID at 1, 2, 4, 32 steps

The shortcut, MeanFlow and reflow runs (digits_shortcut.py, digits_meanflow.py, digits_reflow.py)
build on the same ``images.few_step`` (pretrainx/config/images.py), so all share the UNet
(digits_smoke's 1.0M-parameter class-conditional one, 10 % label dropout), optimiser, EMA, data split and FID protocol; only the objective and the training steps differ
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
from pretrainx.config import images, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "flow", "ddpm")
    return images.few_step("ddpm" if "ddpm" in flags else "flow", steps=3000)   # digits_smoke's flow length
