"""A prefix LM on one decoder (UL2's S-denoiser alone): the character GPT of
``configs/gpt/shakespeare_char.py`` with prefix attention, each row cut at a random point,
bidirectional over the prefix, causal after it, loss on the suffix only.

  pretrainx train --config configs/ul2/prefix_lm_char.py:smoke --workdir /tmp/plm_smoke  # < 1 min
  pretrainx sample --workdir /tmp/plm_smoke --prompt "ROMEO:" --max-new-tokens 100

The prompt given to ``pretrainx sample`` is the prefix: it is read bidirectionally, then the model
continues causally. Variants: "" (the baby GPT's size and schedule), "smoke".
"""
from pretrainx.config import base, sections, text, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke")
    c = text.gpt(flags, objective="prefix_lm")
    c.prefix = sections.prefix()
    return base.change(c, {"model.attention_kind": "prefix", "sample.prompt": "ROMEO:",
                           "sample.max_new_tokens": 40 if flags else 500})
