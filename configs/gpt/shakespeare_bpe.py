"""A GPT on byte-level BPE tokens of Tiny Shakespeare, through the same runner as shakespeare_char.

Train the tokenizer first (about 2 s on a CPU; 4096 tokens, specials included):

  pretrainx tokenizer train --corpus ../shared/data/tinyshakespeare/input.txt --kind bpe \
      --vocab-size 4096 --out workdirs/tokenizers/shakespeare_bpe4k
  pretrainx train --config configs/gpt/shakespeare_bpe.py --workdir workdirs/shakespeare_bpe
  pretrainx train --config configs/gpt/shakespeare_bpe.py:smoke --workdir /tmp/sb_smoke  # trains its own BPE-1024

Everything not listed here is shakespeare_char's recipe (same model, optimiser, schedule and the
90/10 character split, done before tokenizing). 4096 tokens suit a 1 MB corpus: about 0.31
tokens per byte, so a 256-token block sees ~830 characters. Losses are per BPE token: compare
with the char model in bits per character (loss / ln 2 * tokens / chars), not nats per token.
"""
import os

from pretrainx.config import load as config_lib

_HERE = os.path.dirname(os.path.abspath(__file__))
_TOKENIZER = os.path.normpath(os.path.join(_HERE, "..", "..", "workdirs", "tokenizers",
                                           "shakespeare_bpe4k"))


def get_config(arg: str = ""):
    if arg not in ("", "smoke"):
        raise ValueError(f"unknown variant {arg!r} of shakespeare_bpe (known: smoke)")
    c = config_lib.load(os.path.join(_HERE, "shakespeare_char.py") + (f":{arg}" if arg else ""))
    c.data.tokenizer = _TOKENIZER     # a dir holding tokenizer.json (see the docstring)
    c.model.vocab_size = 4096         # must cover the tokenizer's vocab_size (4096 as trained)
    if arg == "smoke":
        # Self-contained: a 1024-token BPE trained on the training 90 % when the data is built.
        c.data.tokenizer = "bpe:1024"
        c.model.vocab_size = 1024
    return c
