"""UL2's mixture of denoisers (Tay et al. 2022) on T5-small v1.1 (``configs/t5/t5_small.py``).

  pretrainx train --config configs/ul2/ul2_small.py:smoke --workdir /tmp/ul2_smoke   # < 1 min CPU
  pretrainx sample --workdir /tmp/ul2_smoke --prompt "ROMEO: I <extra_id_0> thee"

Each row takes one denoiser by weight; its loss is logged apart (train/ul2_r_loss,
train/ul2_x_loss, train/ul2_s_loss, and val/...), so a run shows which one lags. The paper's
mixture has seven denoisers (R: spans 3 and 8 at 15 %; X: spans 3, 8, 64 at 50 % and 64 at 15 %;
S: prefix LM); here one of each kind, weights 0.4 / 0.4 / 0.2: edit ``ul2.denoisers``.
"""
from pretrainx.config import sections, text, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke")
    c = text.t5(flags, objective="ul2")
    c.ul2 = sections.ul2()
    if "smoke" in flags:              # inputs 64, targets 32 characters; 65 characters + [PAD]
        c.ul2 = sections.ul2(32, (("r", "span", 3.0, 0.15, 0.4),       # </s> 3 modes + sentinels
                                  ("x", "span", 8.0, 0.5, 0.3),
                                  ("s", "prefix", 0.0, 0.25, 0.3)))
    return c
