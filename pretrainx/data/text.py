"""Plain text corpora -> token streams -> language-model batches.

The "text" builder reads one corpus (a local file, a glob, the Python standard library's own
source, or a TFDS data set), tokenises it once, splits it by position (nanoGPT: first 90 % train,
last 10 % val) and serves batches of ``inputs`` / ``targets`` windows:

* ``random``: each row a window at a random offset, as nanoGPT's ``get_batch``; offsets come from
  a generator seeded by (seed, batch index), so batch i is the same on every run and on resume.
* ``sequential``: consecutive non-overlapping windows, the stream cut into ``batch_size`` lanes
  (row r of batch i continues row r of batch i-1), wrapping around at the end.
"""
from __future__ import annotations

import glob
import os
import sysconfig

import numpy as np

from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.data.base import Dataset, batch_rng, register, shard_rows

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
    if path == STDLIB:
        files = stdlib_source_files()
    elif any(ch in path for ch in "*?["):
        files = sorted(glob.glob(path, recursive=True))
        if not files:
            raise FileNotFoundError(f"data.path glob {path!r} matches no file")
    else:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"data file not found: {path} (set --config.data.path)")
        files = [path]
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


class RandomWindows:
    """nanoGPT-style batches: ``batch_size`` windows of ``seq_len + 1`` tokens at random offsets."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int, stream: int = 0):
        if len(tokens) <= seq_len + 1:
            raise ValueError(f"the token stream ({len(tokens)} tokens) is shorter than one "
                             f"window of seq_len + 1 = {seq_len + 1}")
        self.tokens, self.batch_size, self.seq_len = tokens, batch_size, seq_len
        self.seed, self.stream = seed, stream

    def get_batch(self, index: int, shard: tuple[int, int] = (0, 1)) -> dict[str, np.ndarray]:
        rng = batch_rng(self.seed, index, self.stream)
        # Draw the whole global batch's offsets, then keep this process's rows: every process
        # sees the same global batch, whatever the process count.
        starts = rng.integers(0, len(self.tokens) - self.seq_len - 1, size=self.batch_size)
        starts = starts[shard_rows(self.batch_size, shard)]
        windows = np.stack([self.tokens[s:s + self.seq_len + 1] for s in starts])
        return {"inputs": windows[:, :-1].astype(np.int32), "targets": windows[:, 1:].astype(np.int32)}


class SequentialWindows:
    """The stream cut into ``batch_size`` contiguous lanes, read ``seq_len`` tokens at a time."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int):
        lane = (len(tokens) - 1) // batch_size
        if lane < seq_len:
            raise ValueError(f"the token stream ({len(tokens)} tokens) is too short for "
                             f"{batch_size} lanes of seq_len {seq_len}")
        self.tokens, self.batch_size, self.seq_len = tokens, batch_size, seq_len
        self.lane_len = lane
        self.batches_per_pass = lane // seq_len

    def get_batch(self, index: int, shard: tuple[int, int] = (0, 1)) -> dict[str, np.ndarray]:
        offset = (index % self.batches_per_pass) * self.seq_len
        rows = range(self.batch_size)[shard_rows(self.batch_size, shard)]
        windows = np.stack([self.tokens[r * self.lane_len + offset:
                                        r * self.lane_len + offset + self.seq_len + 1] for r in rows])
        return {"inputs": windows[:, :-1].astype(np.int32), "targets": windows[:, 1:].astype(np.int32)}


def make_windows(tokens, sampling: str, batch_size: int, seq_len: int, seed: int, stream: int):
    if sampling == "random":
        return RandomWindows(tokens, batch_size, seq_len, seed, stream)
    if sampling == "sequential":
        return SequentialWindows(tokens, batch_size, seq_len)
    raise ValueError(f"unknown data.sampling {sampling!r} (known: random, sequential)")


def load_text(data_config) -> str:
    if data_config.get("tfds_name"):
        from pretrainx.data import tfds_text  # lazy: tensorflow_datasets is slow to import
        return tfds_text.load_text(data_config.tfds_name, data_config.get("tfds_data_dir") or None,
                                   split="train", text_key=data_config.get("tfds_text_key", "text"))
    return read_corpus(data_config.path, data_config.get("max_bytes", 0))


@register("text")
def build_text(data_config, *, batch_size: int, eval_batch_size: int, seq_len: int, seed: int) -> Dataset:
    text = load_text(data_config)
    tok = tokenizer_lib.from_spec(data_config.tokenizer, text)
    ids = np.asarray(tok.encode(text), dtype=np.int32)
    n_train = int(len(ids) * (1.0 - data_config.val_fraction))
    train_ids, val_ids = ids[:n_train], ids[n_train:]
    train = make_windows(train_ids, data_config.sampling, batch_size, seq_len, seed, stream=0)
    # Validation always draws its own fixed random windows (stream 1), as nanoGPT's estimate_loss.
    val = RandomWindows(val_ids, eval_batch_size, seq_len, seed, stream=1) if len(val_ids) else None
    info = {"train_tokens": int(len(train_ids)), "val_tokens": int(len(val_ids)),
            "vocab_size": int(tok.vocab_size), "chars": len(text)}
    return Dataset(train=train, val=val, tokenizer=tok, info=info)
