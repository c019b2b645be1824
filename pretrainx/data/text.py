"""Plain text corpora -> token streams -> language-model batches.

The "text" builder reads one corpus (a local file, a glob, the Python standard library's own
source, or a TFDS data set), splits it by position (nanoGPT: first 90 % train, last 10 % val),
tokenises it and serves ``inputs`` / ``targets`` windows (``sources.TokenWindows``): "random"
offsets as nanoGPT's ``get_batch``, seeded by (seed, batch index) so batch i is the same on every
run and on resume, or "sequential" non-overlapping windows.
"""
from __future__ import annotations

import os
import sysconfig

import numpy as np

from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.data.base import Dataset, register
from pretrainx.data.sources import TokenWindows, expand_paths

STDLIB = "stdlib"   # data.path value: the running Python's standard library sources (*.py)


def stdlib_source_files() -> list[str]:
    """Sorted .py files of the standard library this Python ships: real code, always present."""
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        # site-packages holds installed third-party code, not the standard library.
        dirnames[:] = sorted(d for d in dirnames if d not in ("site-packages", "__pycache__"))
        files += [os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py")]
    return files


def read_corpus(path: str, max_bytes: int = 0) -> str:
    """The corpus text of ``path``: a file, a glob of files, or ``"stdlib"``."""
    files = stdlib_source_files() if path == STDLIB else expand_paths(path)
    if os.path.isdir(files[0]):
        raise FileNotFoundError(f"data.path {path!r} is a directory; give a file or a glob")
    parts, size = [], 0
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            parts.append(fh.read())
        size += len(parts[-1])
        if max_bytes and size >= max_bytes:
            break
    text = "".join(parts)
    if max_bytes:
        text = text[:max_bytes]
    if not text.strip():
        raise ValueError(f"data file is empty: {path}")
    return text


def load_text(data_config) -> str:
    if data_config.get("tfds_name"):
        from pretrainx.data import tfds_text  # lazy: tensorflow_datasets is slow to import
        # All splits in order, then val_fraction cuts the tail: TFDS tiny_shakespeare's
        # 90/5/5 train/validation/test becomes nanoGPT's 90/10 split exactly.
        return tfds_text.load_text(data_config.tfds_name, data_config.get("tfds_data_dir") or None,
                                   split="train+validation+test",
                                   text_key=data_config.get("tfds_text_key", "text"))
    return read_corpus(data_config.path, data_config.get("max_bytes", 0))


@register("text")
def build_text(data_config, *, batch_size: int, eval_batch_size: int, seq_len: int, seed: int) -> Dataset:
    text = load_text(data_config)
    # Split the characters first, then encode each part (as nanoGPT's prepare.py): a subword
    # vocabulary trained here ("bpe:8000") sees only the training text; a char vocabulary is
    # fit on all of it, so every validation character has an id.
    n_train = int(len(text) * (1.0 - data_config.val_fraction))
    spec = data_config.tokenizer
    tok = tokenizer_lib.from_spec(spec, text if spec == "char" else text[:n_train])
    train_ids = np.asarray(tok.encode(text[:n_train]), dtype=np.int32)
    val_ids = np.asarray(tok.encode(text[n_train:]), dtype=np.int32)
    train = TokenWindows(train_ids, batch_size, seq_len, seed, data_config.sampling, stream=0)
    # Validation always draws its own fixed random windows (stream 1), as nanoGPT's estimate_loss.
    val = TokenWindows(val_ids, eval_batch_size, seq_len, seed, "random", stream=1) if len(val_ids) else None
    info = {"train_tokens": int(len(train_ids)), "val_tokens": int(len(val_ids)),
            "vocab_size": int(tok.vocab_size), "chars": len(text), "val_chars": len(text) - n_train}
    return Dataset(train=train, val=val, tokenizer=tok, info=info)
