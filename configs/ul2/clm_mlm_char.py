"""Causal + masked LM on one decoder (``objectives/clm_mlm.py``): the character GPT of
``configs/gpt/shakespeare_char.py`` with prefix attention, each row causal or masked by weight.

  pretrainx train --config configs/ul2/clm_mlm_char.py:smoke --workdir /tmp/clm_mlm_smoke  # < 1 min
  pretrainx sample --workdir /tmp/clm_mlm_smoke --prompt "ROMEO:" --max-new-tokens 100

``mixture.mlm_weight`` = 0 is pure clm on the same rows, 1 pure masked LM (the arms of the
seeds' hybrid claim: compare ``val/clm_loss`` at the same token budget, with
``mixture.eval_mlm_weight`` = 0 so every arm's validation rows are all causal; see
``experiments/seed_studies.py``). [MASK] is appended to
the 65 characters (id 65), so the vocabulary is 66.
"""
from pretrainx.config import base, sections, text, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke")
    c = text.gpt(flags, objective="clm_mlm")
    c.mixture = sections.mixture()
    c.mlm = sections.mlm()
    return base.change(c, {"model.attention_kind": "prefix", "model.vocab_size": 66,
                           "sample.prompt": "ROMEO:", "sample.max_new_tokens": 40 if flags else 500})
