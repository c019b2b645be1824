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
import os

import ml_collections

from pretrainx.config import load as config_lib

_HERE = os.path.dirname(os.path.abspath(__file__))


def get_config(arg: str = ""):
    if arg not in ("", "smoke"):
        raise ValueError(f"unknown variant {arg!r} of clm_mlm_char (known: smoke)")
    c = config_lib.load(os.path.join(_HERE, "..", "gpt", "shakespeare_char.py") +
                        (":smoke" if arg else ""))
    c.objective = "clm_mlm"
    c.model.attention_kind = "prefix"
    c.model.vocab_size = 66
    c.mixture = ml_collections.ConfigDict()
    c.mixture.mlm_weight = 0.5
    c.mixture.eval_mlm_weight = -1.0  # validation rows' chance of masking; < 0: mlm_weight
    c.mlm = ml_collections.ConfigDict()
    c.mlm.rate = 0.15
    c.mlm.rate_schedule = "constant"
    c.mlm.rate_start = 0.15
    c.mlm.eval_rate = 0.15
    c.mlm.whole_word = False
    c.sample.prompt = "ROMEO:"
    c.sample.max_new_tokens = 40 if arg else 500
    if "sweep" in c:
        del c["sweep"]
    return c
