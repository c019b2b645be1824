"""UL2's mixture of denoisers (Tay et al. 2022) on T5-small v1.1 (``configs/t5/t5_small.py``).

  pretrainx train --config configs/ul2/ul2_small.py:smoke --workdir /tmp/ul2_smoke   # < 1 min CPU
  pretrainx sample --workdir /tmp/ul2_smoke --prompt "ROMEO: I <extra_id_0> thee"

Each row takes one denoiser by weight; its loss is logged apart (train/ul2_r_loss,
train/ul2_x_loss, train/ul2_s_loss, and val/...), so a run shows which one lags. The paper's
mixture has seven denoisers (R: spans 3 and 8 at 15 %; X: spans 3, 8, 64 at 50 % and 64 at 15 %;
S: prefix LM); here one of each kind, weights 0.4 / 0.4 / 0.2: edit ``ul2.denoisers``.
"""
import os

import ml_collections

from pretrainx.config import load as config_lib

_HERE = os.path.dirname(os.path.abspath(__file__))


def get_config(arg: str = ""):
    if arg not in ("", "smoke"):
        raise ValueError(f"unknown variant {arg!r} of ul2_small (known: smoke)")
    c = config_lib.load(os.path.join(_HERE, "..", "t5", "t5_small.py") + (":smoke" if arg else ""))
    c.objective = "ul2"
    del c["span"]
    c.ul2 = ml_collections.ConfigDict()
    c.ul2.targets_length = 114        # T5's targets at inputs 512
    #              name kind      span  density weight
    c.ul2.denoisers = (("r", "span", 3.0, 0.15, 0.4),
                       ("x", "span", 32.0, 0.5, 0.4),
                       ("s", "prefix", 0.0, 0.25, 0.2))
    if arg == "smoke":                # inputs 64, targets 32 characters
        c.ul2.targets_length = 32
        c.ul2.denoisers = (("r", "span", 3.0, 0.15, 0.4),
                           ("x", "span", 8.0, 0.5, 0.3),
                           ("s", "prefix", 0.0, 0.25, 0.3))
        c.model.vocab_size = 80       # 65 characters + [PAD] </s> 3 modes + sentinels
    return c
