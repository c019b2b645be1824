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
from pretrainx.config import base, text, variants

_TOKENIZER = text.checkout_path("workdirs", "tokenizers", "shakespeare_bpe4k")


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke")
    if "smoke" in flags:              # self-contained: a 1024-token BPE trained on the training 90 %
        return base.change(text.gpt(flags), {"data.tokenizer": "bpe:1024", "model.vocab_size": 1024})
    # a dir holding tokenizer.json (see the docstring); the model covers its 4096 tokens
    return base.change(text.gpt(flags), {"data.tokenizer": _TOKENIZER, "model.vocab_size": 4096})
