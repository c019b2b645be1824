"""Quickstart: a byte-level GPT on the Python standard library's own source code.

Real text that every Python install carries, so it runs on a fresh machine with no download:

  pretrainx train --config configs/gpt/pycode_char.py:smoke --workdir workdirs/pycode_smoke
  pretrainx sample --workdir workdirs/pycode_smoke --prompt "def " --max-new-tokens 200

Everything not set here is the shakespeare_char recipe (configs/gpt/shakespeare_char.py).
"""
from pretrainx.config import base, text, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke")
    return base.change(text.gpt(flags), {
        "data.path": "stdlib",        # the running interpreter's Lib/**/*.py, sorted
        "data.max_bytes": 2_000_000 if flags else 20_000_000,   # ~2 / ~20 MB of code
        "data.tokenizer": "byte",     # UTF-8 bytes: any source file round-trips
        "model.vocab_size": 256, "sample.prompt": "def "})
