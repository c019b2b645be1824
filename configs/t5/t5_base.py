"""T5-base v1.1 (google/t5-v1_1-base: 12+12 layers, 768 wide, 12 heads of 64, gated-GELU MLP of
2048, untied output; ~248M parameters) with span corruption; everything else as
``t5_small.py``. Variant "v1_0": the paper's T5-base (ReLU MLP of 3072, tied output, ~223M).

  pretrainx train --config configs/t5/t5_base.py --workdir workdirs/t5_base   # a GPU
  pretrainx train --config configs/t5/t5_base.py:smoke --workdir /tmp/t5b     # = t5_small's smoke
"""
from pretrainx.config import base, sections, text, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "v1_0", "smoke")
    c = text.t5(flags)
    c.span = sections.span()
    if "smoke" in flags:              # t5_small's smoke
        return c
    return base.change(c, {"model.num_layers": 12, "model.num_decoder_layers": 12,
                           "model.embed_dim": 768, "model.num_heads": 12, "model.head_size": 64,
                           "model.mlp_dim": 3072 if "v1_0" in flags else 2048})
