"""T5-base v1.1 (google/t5-v1_1-base: 12+12 layers, 768 wide, 12 heads of 64, gated-GELU MLP of
2048, untied output; ~248M parameters) with span corruption; everything else as
``t5_small.py``. Variant "v1_0": the paper's T5-base (ReLU MLP of 3072, tied output, ~223M).

  pretrainx train --config configs/t5/t5_base.py --workdir workdirs/t5_base   # a GPU
  pretrainx train --config configs/t5/t5_base.py:smoke --workdir /tmp/t5b     # = t5_small's smoke
"""
import os

from pretrainx.config import load as config_lib

_HERE = os.path.dirname(os.path.abspath(__file__))


def get_config(arg: str = ""):
    if arg not in ("", "v1_0", "smoke"):
        raise ValueError(f"unknown variant {arg!r} of t5_base (known: v1_0, smoke)")
    c = config_lib.load(os.path.join(_HERE, "t5_small.py") + (f":{arg}" if arg else ""))
    if arg == "smoke":
        return c
    c.model.num_layers = 12
    c.model.num_decoder_layers = 12
    c.model.embed_dim = 768
    c.model.num_heads = 12
    c.model.head_size = 64
    c.model.mlp_dim = 2048 if arg == "" else 3072
    return c
