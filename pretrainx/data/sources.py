"""Batch sources over arrays, and the ``"numpy"`` data kind.

Sources (each a deterministic function of (seed, batch index), see base.py):

* :class:`ArraySource`: shuffled epochs over the rows of equal-length arrays (token rows, images,
  labels...). Batch ``i`` is rows ``i % steps`` of epoch ``i // steps``'s permutation.
* :class:`TokenWindows`: nanoGPT-style windows of one long token stream ("random" starts drawn
  from the batch's own generator, or "sequential" non-overlapping windows).

Registered kind ``"numpy"``: ``data.path`` is a .npy/.npz. A 1-D integer array is a token stream
(windows); a 2-D array of rows (N, T+1) gives ``inputs``/``targets`` rows; a .npz's arrays are
served as they are through :class:`ArraySource` (all with the same first dimension). The last
``data.val_fraction`` of the tokens / rows validates. Text corpora go through ``text.py``.
"""
from __future__ import annotations

import os

import numpy as np

from pretrainx.data import rng as streams
from pretrainx.data.base import TOKENS, Batch, Dataset, batch_rng, raw_tokens, register, shard_rows
from pretrainx.errors import UserError


class ArraySource:
    """Seeded, epoch-shuffled batches over the rows of a dict of equal-length arrays."""

    def __init__(self, arrays: dict[str, np.ndarray], batch_size: int, seed: int = 0,
                 shuffle: bool = True, drop_remainder: bool = True):
        lengths = {k: len(v) for k, v in arrays.items()}
        if not arrays or len(set(lengths.values())) != 1:
            raise UserError(f"ArraySource needs arrays with one common length, got {lengths}")
        self.arrays = arrays
        self.num_rows = next(iter(lengths.values()))
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_remainder = drop_remainder
        if drop_remainder:
            if self.num_rows < batch_size:
                raise UserError(f"{self.num_rows} rows cannot fill one batch of {batch_size} "
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
    """Windows of one token stream: ``inputs``/``targets`` (int32, B x T) cut from ``seq_len + 1``
    tokens, or, with ``shift=False``, raw ``tokens`` rows of ``seq_len`` (an objective that builds
    its own inputs and targets, e.g. masked LM or span corruption, asks for those). ``tokens``: an
    array, or a stream of memory-mapped shards (``shards.ShardStream``)."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int = 0,
                 sampling: str = "random", stream: int = streams.WINDOW_STARTS_TRAIN,
                 shift: bool = True):
        self.width = seq_len + 1 if shift else seq_len
        if len(tokens) <= self.width:
            raise UserError(f"a stream of {len(tokens)} tokens is too short for windows of "
                            f"{self.width}")
        if sampling not in ("random", "sequential"):
            raise UserError(f"sampling must be 'random' or 'sequential', got {sampling!r}")
        # an object with ``windows(starts, width)`` (shards.ShardStream over memory-mapped shards)
        # is read as it is; anything else becomes one array
        self.tokens = tokens if hasattr(tokens, "windows") else np.asarray(tokens)
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.seed = seed
        self.sampling = sampling
        self.stream = stream
        self.shift = shift

    def starts(self, index: int) -> np.ndarray:
        """Start offsets of the global batch's windows (all rows, before sharding)."""
        last = len(self.tokens) - self.width       # highest valid start
        if self.sampling == "random":
            return batch_rng(self.seed, index, self.stream).integers(0, last + 1, self.batch_size)
        num_windows = last // self.seq_len + 1
        window = (index * self.batch_size + np.arange(self.batch_size)) % num_windows
        return window * self.seq_len

    def get_batch(self, index: int, shard: tuple[int, int] = (0, 1)) -> Batch:
        starts = self.starts(index)[shard_rows(self.batch_size, shard)]
        if hasattr(self.tokens, "windows"):
            windows = self.tokens.windows(starts, self.width)
        else:
            windows = self.tokens[starts[:, None] + np.arange(self.width)].astype(np.int32)
        if not self.shift:
            return {TOKENS: windows}
        return {"inputs": windows[:, :-1], "targets": windows[:, 1:]}


def split_tail(items, val_fraction: float):
    """(train, val) of an array or list: the last ``val_fraction`` validates (at least one item
    when the fraction is > 0). Documents of text follow ``text.split_documents`` instead."""
    if not 0 <= val_fraction < 1:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0:
        return items, items[:0]
    cut = min(len(items) - 1, int(round(len(items) * (1 - val_fraction))))
    return items[:cut], items[cut:]


def load_arrays(path: str) -> dict[str, np.ndarray] | np.ndarray:
    """A .npy (one array, memory-mapped) or a .npz (dict of arrays)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"numpy data file not found: {path}")
    if path.endswith(".npz"):
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    return np.load(path, mmap_mode="r")


@register("numpy")
def build_numpy(config, *, batch_size, eval_batch_size, seq_len, seed, fields=None,
                tokenizer=None) -> Dataset:
    data = load_arrays(config.path)
    val_fraction = config.val_fraction
    if isinstance(data, dict):                                  # .npz: rows of named arrays
        n = len(next(iter(data.values())))
        cut = n - int(round(n * val_fraction))
        train = ArraySource({k: v[:cut] for k, v in data.items()}, batch_size, seed)
        val = (ArraySource({k: v[cut:] for k, v in data.items()}, eval_batch_size, seed,
                           shuffle=False, drop_remainder=False) if cut < n else None)
        return Dataset(train, val, None, {"train_rows": cut, "val_rows": n - cut})
    if data.ndim == 1:                                          # a token stream
        train_ids, val_ids = split_tail(data, val_fraction)
        sampling = config.sampling
        shift = not raw_tokens(fields)
        train = TokenWindows(train_ids, batch_size, seq_len, seed, sampling,
                             stream=streams.WINDOW_STARTS_TRAIN, shift=shift)
        val = (TokenWindows(val_ids, eval_batch_size, seq_len, seed, sampling,
                            stream=streams.WINDOW_STARTS_VAL, shift=shift)
               if len(val_ids) > seq_len + 1 else None)
        return Dataset(train, val, None, {"train_tokens": len(train_ids),
                                          "val_tokens": len(val_ids)})
    if data.ndim == 2:                                          # rows of T+1 tokens
        if seq_len is not None and data.shape[1] != seq_len + 1:
            raise UserError(f"{config.path}: rows of {data.shape[1]} tokens, expected "
                            f"seq_len+1 = {seq_len + 1}")
        rows = np.asarray(data, np.int32)
        train_rows, val_rows = split_tail(rows, val_fraction)

        def source(r, bs, shuffle):
            return ArraySource({"inputs": r[:, :-1], "targets": r[:, 1:]}, bs, seed,
                               shuffle=shuffle, drop_remainder=shuffle)
        return Dataset(source(train_rows, batch_size, True),
                       source(val_rows, eval_batch_size, False) if len(val_rows) else None,
                       None, {"train_rows": len(train_rows), "val_rows": len(val_rows)})
    raise UserError(f"{config.path}: expected a 1-D token stream or 2-D rows, "
                    f"got shape {data.shape}")
