"""A prefix LM on one decoder (UL2's S-denoiser alone): the character GPT of
``configs/gpt/shakespeare_char.py`` with prefix attention, each row cut at a random point,
bidirectional over the prefix, causal after it, loss on the suffix only.

  pretrainx train --config configs/ul2/prefix_lm_char.py:smoke --workdir /tmp/plm_smoke  # < 1 min
  pretrainx sample --workdir /tmp/plm_smoke --prompt "ROMEO:" --max-new-tokens 100

The prompt given to ``pretrainx sample`` is the prefix: it is read bidirectionally, then the model
continues causally. Variants: "" (the baby GPT's size and schedule), "smoke".
"""
import os

import ml_collections

from pretrainx.config import load as config_lib

_HERE = os.path.dirname(os.path.abspath(__file__))


def get_config(arg: str = ""):
    if arg not in ("", "smoke"):
        raise ValueError(f"unknown variant {arg!r} of prefix_lm_char (known: smoke)")
    base = os.path.join(_HERE, "..", "gpt", "shakespeare_char.py")
    c = config_lib.load(base + (":smoke" if arg else ""))
    c.objective = "prefix_lm"
    c.model.attention_kind = "prefix"
    c.prefix = ml_collections.ConfigDict()
    c.prefix.min_length = 1           # prefix lengths uniform in [min_length, max_fraction * T]
    c.prefix.max_fraction = 1.0
    c.sample.prompt = "ROMEO:"
    c.sample.max_new_tokens = 40 if arg else 500
    if hasattr(c, "sweep"):
        del c["sweep"]
    return c
