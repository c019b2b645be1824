"""More batch sources and the data kinds built on them.

Sources (each a deterministic function of (seed, batch index), see base.py):

* :class:`ArraySource`: shuffled epochs over the rows of equal-length arrays (token rows, images,
  labels...). Batch ``i`` is rows ``i % steps`` of epoch ``i // steps``'s permutation.
* :class:`TokenWindows`: nanoGPT-style windows of one long token stream ("random" starts drawn
  from the batch's own generator, or "sequential" non-overlapping windows).

Registered kinds (``config.data.kind``):

* ``"jsonl"``: documents = field ``data.text_key`` of each record of ``data.path`` (.jsonl or
  .jsonl.gz; a glob is fine). ``data.packing``: "concat" joins documents with EOS into one stream
  read as windows; "packed"/"greedy" packs them into rows with segment ids (see packing.py).
* ``"text_files"``: documents = the files matched by ``data.path`` (a glob, or a list of paths).
* ``"numpy"``: ``data.path`` is a .npy/.npz. A 1-D integer array is a token stream (windows); a
  2-D array of rows (N, T+1) gives ``inputs``/``targets`` rows; a .npz's arrays are served as
  they are through :class:`ArraySource` (all with the same first dimension).

Common fields: ``data.tokenizer`` ("char" | "byte" | saved path | "bpe:8000" trained now),
``data.val_fraction`` (the last documents / tokens / rows validate), ``data.seq_len``,
``data.sampling`` ("random" | "sequential") for windows.
"""
from __future__ import annotations

import glob
import gzip
import json
import os

import numpy as np

from pretrainx.data.base import Batch, Dataset, batch_rng, register, shard_rows


class ArraySource:
    """Seeded, epoch-shuffled batches over the rows of a dict of equal-length arrays."""

    def __init__(self, arrays: dict[str, np.ndarray], batch_size: int, seed: int = 0,
                 shuffle: bool = True, drop_remainder: bool = True):
        lengths = {k: len(v) for k, v in arrays.items()}
        if not arrays or len(set(lengths.values())) != 1:
            raise ValueError(f"ArraySource needs arrays with one common length, got {lengths}")
        self.arrays = arrays
        self.num_rows = next(iter(lengths.values()))
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_remainder = drop_remainder
        if drop_remainder:
            if self.num_rows < batch_size:
                raise ValueError(f"{self.num_rows} rows cannot fill one batch of {batch_size} "
                                 f"with drop_remainder=True")
            self.steps_per_epoch = self.num_rows // batch_size
        else:
            # the last batch of an epoch is topped up from the start of the same permutation, so
            # shapes stay fixed and every row is seen at least once per epoch
            self.steps_per_epoch = -(-self.num_rows // batch_size)

    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_rows)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_rows)

    def row_indices(self, index: int) -> np.ndarray:
        """The rows (of the whole array) that make up global batch ``index``."""
        epoch, step = divmod(int(index), self.steps_per_epoch)
        order = self._order(epoch)
        positions = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        return order[positions % self.num_rows]

    def get_batch(self, index: int, shard: tuple[int, int] = (0, 1)) -> Batch:
        rows = self.row_indices(index)[shard_rows(self.batch_size, shard)]
        return {k: np.asarray(v[rows]) for k, v in self.arrays.items()}


class TokenWindows:
    """Windows of ``seq_len + 1`` tokens of one stream as ``inputs``/``targets`` (int32, B x T)."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int = 0,
                 sampling: str = "random", stream: int = 0):
        if len(tokens) <= seq_len + 1:
            raise ValueError(f"a stream of {len(tokens)} tokens is too short for windows of "
                             f"{seq_len}+1")
        if sampling not in ("random", "sequential"):
            raise ValueError(f"sampling must be 'random' or 'sequential', got {sampling!r}")
        self.tokens = np.asarray(tokens)
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.seed = seed
        self.sampling = sampling
        self.stream = stream

    def starts(self, index: int) -> np.ndarray:
        """Start offsets of the global batch's windows (all rows, before sharding)."""
        last = len(self.tokens) - self.seq_len - 1       # highest valid start
        if self.sampling == "random":
            return batch_rng(self.seed, index, self.stream).integers(0, last + 1, self.batch_size)
        num_windows = last // self.seq_len + 1
        window = (index * self.batch_size + np.arange(self.batch_size)) % num_windows
        return window * self.seq_len

    def get_batch(self, index: int, shard: tuple[int, int] = (0, 1)) -> Batch:
        starts = self.starts(index)[shard_rows(self.batch_size, shard)]
        windows = self.tokens[starts[:, None] + np.arange(self.seq_len + 1)].astype(np.int32)
        return {"inputs": windows[:, :-1], "targets": windows[:, 1:]}


# --------------------------------------------------------------------------- reading documents

def expand_paths(path) -> list[str]:
    """A path, a glob, or a list of either -> the sorted existing files (error if none)."""
    patterns = [path] if isinstance(path, str) else list(path)
    files = []
    for p in patterns:
        p = os.path.expanduser(p)
        matched = sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
        missing = [m for m in matched if not os.path.exists(m)]
        if missing:
            raise FileNotFoundError(f"data file not found: {missing[0]}")
        files += matched
    if not files:
        raise FileNotFoundError(f"no data files match {path!r}")
    return files


def read_jsonl(path, text_key: str = "text", max_docs: int = 0) -> list[str]:
    """The ``text_key`` field of every record of the .jsonl / .jsonl.gz files (in order)."""
    docs = []
    for file in expand_paths(path):
        opener = gzip.open if file.endswith(".gz") else open
        with opener(file, "rt", encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                if text_key not in record:
                    raise KeyError(f"{file}:{line_no}: no field {text_key!r} "
                                   f"(fields: {sorted(record)}); set data.text_key")
                docs.append(str(record[text_key]))
                if max_docs and len(docs) >= max_docs:
                    return docs
    return docs


def read_text_files(path) -> list[str]:
    """Each matched file is one document."""
    docs = []
    for file in expand_paths(path):
        with open(file, encoding="utf-8", newline="") as f:
            docs.append(f.read())
    return docs


def split_off_validation(items, val_fraction: float):
    """(train, val): the last ``val_fraction`` of ``items`` validate (at least one item)."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0:
        return items, items[:0]
    cut = min(len(items) - 1, int(round(len(items) * (1 - val_fraction))))
    return items[:cut], items[cut:]


def _cfg(config, name, default):
    return config.get(name, default) if hasattr(config, "get") else getattr(config, name, default)


def _eos_id(tokenizer):
    from pretrainx.data import special_tokens as st
    token_id = getattr(tokenizer, "token_id", None)
    try:
        return token_id(st.EOS) if token_id else None
    except KeyError:
        return None


def documents_dataset(docs: list[str], config, *, batch_size, eval_batch_size, seq_len,
                      seed) -> Dataset:
    """Documents -> tokenizer -> either an EOS-joined stream of windows or packed rows."""
    packing = _cfg(config, "packing", "concat")
    if packing != "concat":
        from pretrainx.data import packing as packing_lib
        return packing_lib.packed_documents_dataset(
            docs, config, batch_size=batch_size, eval_batch_size=eval_batch_size,
            seq_len=seq_len, seed=seed)
    from pretrainx.data import subword
    train_docs, val_docs = split_off_validation(docs, _cfg(config, "val_fraction", 0.1))
    tok = subword.resolve(_cfg(config, "tokenizer", "byte"), train_docs, docs)
    eos = _eos_id(tok)
    encode_batch = getattr(tok, "encode_batch", None) or (lambda ts: [tok.encode(t) for t in ts])

    def stream(texts):
        # documents joined by EOS; with no EOS token (char/byte) they are simply concatenated
        ids = encode_batch(texts)
        pieces = [np.asarray(s + ([eos] if eos is not None else []), np.int32) for s in ids]
        return np.concatenate(pieces) if pieces else np.zeros((0,), np.int32)

    sampling = _cfg(config, "sampling", "random")
    train_ids = stream(train_docs)
    val_ids = stream(val_docs)
    train = TokenWindows(train_ids, batch_size, seq_len, seed, sampling, stream=0)
    val = (TokenWindows(val_ids, eval_batch_size, seq_len, seed, sampling, stream=1)
           if len(val_ids) > seq_len + 1 else None)
    info = {"train_tokens": int(len(train_ids)), "val_tokens": int(len(val_ids)),
            "train_docs": len(train_docs), "val_docs": len(val_docs),
            "vocab_size": int(tok.vocab_size)}
    return Dataset(train=train, val=val, tokenizer=tok, info=info)


@register("jsonl")
def build_jsonl(config, *, batch_size, eval_batch_size, seq_len, seed) -> Dataset:
    docs = read_jsonl(config.path, _cfg(config, "text_key", "text"), _cfg(config, "max_docs", 0))
    return documents_dataset(docs, config, batch_size=batch_size, eval_batch_size=eval_batch_size,
                             seq_len=seq_len, seed=seed)


@register("text_files")
def build_text_files(config, *, batch_size, eval_batch_size, seq_len, seed) -> Dataset:
    docs = read_text_files(config.path)
    return documents_dataset(docs, config, batch_size=batch_size, eval_batch_size=eval_batch_size,
                             seq_len=seq_len, seed=seed)


def load_arrays(path: str) -> dict[str, np.ndarray] | np.ndarray:
    """A .npy (one array, memory-mapped) or a .npz (dict of arrays)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"numpy data file not found: {path}")
    if path.endswith(".npz"):
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    return np.load(path, mmap_mode="r")


@register("numpy")
def build_numpy(config, *, batch_size, eval_batch_size, seq_len, seed) -> Dataset:
    data = load_arrays(config.path)
    val_fraction = _cfg(config, "val_fraction", 0.1)
    if isinstance(data, dict):                                  # .npz: rows of named arrays
        n = len(next(iter(data.values())))
        cut = n - int(round(n * val_fraction))
        train = ArraySource({k: v[:cut] for k, v in data.items()}, batch_size, seed)
        val = (ArraySource({k: v[cut:] for k, v in data.items()}, eval_batch_size, seed,
                           shuffle=False, drop_remainder=False) if cut < n else None)
        return Dataset(train, val, None, {"train_rows": cut, "val_rows": n - cut})
    if data.ndim == 1:                                          # a token stream
        train_ids, val_ids = split_off_validation(data, val_fraction)
        sampling = _cfg(config, "sampling", "random")
        train = TokenWindows(train_ids, batch_size, seq_len, seed, sampling, stream=0)
        val = (TokenWindows(val_ids, eval_batch_size, seq_len, seed, sampling, stream=1)
               if len(val_ids) > seq_len + 1 else None)
        return Dataset(train, val, None, {"train_tokens": len(train_ids),
                                          "val_tokens": len(val_ids)})
    if data.ndim == 2:                                          # rows of T+1 tokens
        if seq_len is not None and data.shape[1] != seq_len + 1:
            raise ValueError(f"{config.path}: rows of {data.shape[1]} tokens, expected "
                             f"seq_len+1 = {seq_len + 1}")
        rows = np.asarray(data, np.int32)
        train_rows, val_rows = split_off_validation(rows, val_fraction)

        def source(r, bs, shuffle):
            return ArraySource({"inputs": r[:, :-1], "targets": r[:, 1:]}, bs, seed,
                               shuffle=shuffle, drop_remainder=shuffle)
        return Dataset(source(train_rows, batch_size, True),
                       source(val_rows, eval_batch_size, False) if len(val_rows) else None,
                       None, {"train_rows": len(train_rows), "val_rows": len(val_rows)})
    raise ValueError(f"{config.path}: expected a 1-D token stream or 2-D rows, "
                     f"got shape {data.shape}")
