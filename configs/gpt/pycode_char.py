"""Quickstart: a byte-level GPT on the Python standard library's own source code.

Real text that every Python install carries, so it runs on a fresh machine with no download:

  pretrainx train --config configs/gpt/pycode_char.py:smoke --workdir workdirs/pycode_smoke
  pretrainx sample --workdir workdirs/pycode_smoke --prompt "def " --max-new-tokens 200

Everything not set here is the shakespeare_char recipe (configs/gpt/shakespeare_char.py).
"""
import os

from pretrainx.config import load as config_lib


def get_config(arg: str = ""):
    variant = "smoke" if arg == "smoke" else ""
    if arg not in ("", "smoke"):
        raise ValueError(f"unknown variant {arg!r} of pycode_char (known: smoke)")
    c = config_lib.load(os.path.join(os.path.dirname(__file__), "shakespeare_char.py") +
                        (f":{variant}" if variant else ""))
    c.data.path = "stdlib"            # the running interpreter's Lib/**/*.py, sorted
    c.data.max_bytes = 20_000_000     # ~20 MB of code
    c.data.tokenizer = "byte"         # UTF-8 bytes: any source file round-trips
    c.model.vocab_size = 256
    c.sample.prompt = "def "
    if variant == "smoke":
        c.data.max_bytes = 2_000_000
    return c
