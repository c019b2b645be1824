"""Sequence packing: many documents in fixed-length rows, kept apart by segment ids.

A row is ``seq_len + 1`` token slots; ``inputs`` are slots ``[0, T)`` and ``targets`` slots
``[1, T]``. For each input position the row also carries

* ``segment_ids``: 1, 2, 3... for the documents of the row in order, 0 for padding. The model
  attends only within a segment (causal AND same-segment mask).
* ``positions``: 0, 1, 2... restarting at every document (a document continued from the previous
  row restarts at 0 too), for position embeddings / RoPE.
* ``weights``: 1 where the target is the next token of the same document; 0 for padding and for
  the last token of a document, whose "target" would be the next document's first token.

Modes of :func:`pack_documents`:

* ``"greedy"``: whole documents in order, a new row when the next one does not fit; the tail of a
  row is padding. Documents longer than a row are cut into row-sized pieces overlapping by one
  token, so the pair across each cut is still trained.
* ``"concat"``: all documents as one stream cut into rows with a stride of T (row k's last slot
  is row k+1's first), so every in-document pair is trained once and only the last row pads.
* ``"pad"``: one document per row, truncated or padded (no packing; the baseline to compare).

With ``shift=False`` a row is ``seq_len`` slots served whole as ``tokens`` (with its
``segment_ids`` and ``positions``), for objectives that make their own inputs and targets.
``text.py`` reads documents, tokenizes them and packs them with these functions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from pretrainx.data.base import TOKENS
from pretrainx.data.sources import ArraySource
from pretrainx.errors import UserError

MODES = ("greedy", "concat", "pad")


def _pieces(docs: Sequence[Sequence[int]], width: int, mode: str, overlap: int):
    """Documents cut to at most ``width`` tokens (the part of a long document past a row)."""
    for d in docs:
        d = np.asarray(d, np.int64)
        if len(d) == 0:
            continue
        if mode == "pad" or len(d) <= width:
            yield d[:width]
        else:
            # stride width-1 for next-token rows: a piece starts with the previous piece's last
            # token, so the pair across the cut is still trained (an input in the next piece)
            for start in range(0, len(d) - overlap, width - overlap):
                yield d[start:start + width]


def _row_slots(docs, seq_len: int, mode: str, pad_id: int, width: int):
    """(tokens, segments, positions) of every "greedy" or "pad" row, each (N, width) int64."""
    tokens, segments, positions = [], [], []

    def new_row():
        tokens.append(np.full(width, pad_id, np.int64))
        segments.append(np.zeros(width, np.int64))
        positions.append(np.zeros(width, np.int64))

    used = width                         # slots used in the current row; "full" opens a new one
    for piece in _pieces(docs, width, mode, width - seq_len):
        if mode == "pad" or used + len(piece) > width:
            new_row()
            used, count = 0, 0
        count += 1
        tokens[-1][used:used + len(piece)] = piece
        segments[-1][used:used + len(piece)] = count
        positions[-1][used:used + len(piece)] = np.arange(len(piece))
        used += len(piece)
    if not tokens:
        empty = np.zeros((0, width), np.int64)
        return empty, empty, empty
    return np.stack(tokens), np.stack(segments), np.stack(positions)


def concat_rows(windows: np.ndarray, starts: np.ndarray, pad_id: int = 0, shift: bool = True,
                valid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """"concat" rows, all at once, from (N, width) token ``windows`` of a document stream (width
    ``seq_len + 1`` when ``shift``) and ``starts`` (N, width) bool: True where a document begins
    (slot 0 always begins a segment: a document continued from before the window restarts its
    positions at 0). ``valid`` marks the real slots (the rest is padding: segment 0). The rows
    ``pack_documents`` makes of the same documents, without a Python step per document (shared
    by the text and shards kinds)."""
    valid = np.ones(windows.shape, bool) if valid is None else valid
    slot = np.broadcast_to(np.arange(windows.shape[1]), windows.shape)
    begins = starts & valid
    begins[:, 0] = False
    segments = np.where(valid, np.cumsum(begins, axis=1) + 1, 0)
    positions = np.where(valid, slot - np.maximum.accumulate(np.where(begins, slot, 0), axis=1), 0)
    tokens = np.where(valid, windows, pad_id)
    return _rows(tokens, segments, positions, pad_id, shift)


def _rows(tokens, segments, positions, pad_id: int, shift: bool) -> dict[str, np.ndarray]:
    """The fields of rows of ``width`` slots (``seq_len + 1`` when ``shift``, else ``seq_len``)."""
    if not shift:
        return {TOKENS: tokens.astype(np.int32), "segment_ids": segments.astype(np.int32),
                "positions": positions.astype(np.int32)}
    seg_in, seg_next = segments[:, :-1], segments[:, 1:]
    weights = (seg_in > 0) & (seg_next == seg_in)
    return {
        "inputs": tokens[:, :-1].astype(np.int32),
        "targets": np.where(weights, tokens[:, 1:], pad_id).astype(np.int32),
        "segment_ids": seg_in.astype(np.int32),
        "positions": positions[:, :-1].astype(np.int32),
        "weights": weights.astype(np.float32),
    }


def _concat_stream(docs, seq_len: int, pad_id: int, shift: bool) -> dict[str, np.ndarray]:
    """The documents as one stream cut into rows with a stride of ``seq_len`` (``concat_rows``);
    the last row pads."""
    width = seq_len + 1 if shift else seq_len
    stream = [np.asarray(d, np.int64) for d in docs if len(d)]
    if not stream:
        empty = np.zeros((0, width), np.int64)
        return _rows(empty, empty, empty, pad_id, shift)
    flat = np.concatenate(stream)
    begins = np.zeros(len(flat) + 1, bool)
    begins[np.cumsum([0] + [len(d) for d in stream[:-1]])] = True
    num_rows = max(1, -(-(len(flat) - (width - seq_len)) // seq_len))
    at = np.arange(num_rows)[:, None] * seq_len + np.arange(width)
    valid = at < len(flat)
    at = np.minimum(at, len(flat))
    windows = np.append(flat, pad_id)[at]
    return concat_rows(windows, begins[at], pad_id, shift, valid)


def pack_documents(docs: Sequence[Sequence[int]], seq_len: int, pad_id: int = 0,
                   mode: str = "greedy", shift: bool = True) -> dict[str, np.ndarray]:
    """Token-id documents -> rows of ``inputs``, ``targets``, ``segment_ids``, ``positions``,
    ``weights`` (all (N, seq_len); int32 except ``weights`` float32); with ``shift=False`` rows
    of ``tokens``, ``segment_ids``, ``positions`` (all (N, seq_len) int32)."""
    if mode not in MODES:
        raise UserError(f"unknown packing mode {mode!r} (known: {', '.join(MODES)})")
    if mode == "concat":
        return _concat_stream(docs, seq_len, pad_id, shift)
    width = seq_len + 1 if shift else seq_len
    return _rows(*_row_slots(docs, seq_len, mode, pad_id, width), pad_id, shift)


class PackedBatches(ArraySource):
    """Batches of packed rows: seeded shuffle per epoch, a pure function of the batch index."""

    def __init__(self, rows: dict[str, np.ndarray], batch_size: int, seed: int = 0,
                 shuffle: bool = True, drop_remainder: bool = True):
        super().__init__(rows, batch_size, seed, shuffle=shuffle, drop_remainder=drop_remainder)

    @property
    def fill(self) -> float:
        """Fraction of input slots holding real tokens (1 - padding waste)."""
        return float((self.arrays["segment_ids"] > 0).mean())
