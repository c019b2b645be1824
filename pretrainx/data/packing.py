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
    """(tokens, segments, positions) of every row, each (N, width) int64; consecutive "concat"
    rows overlap by ``width - seq_len`` slots."""
    tokens, segments, positions = [], [], []

    def new_row():
        tokens.append(np.full(width, pad_id, np.int64))
        segments.append(np.zeros(width, np.int64))
        positions.append(np.zeros(width, np.int64))

    if mode == "concat":
        stream = [np.asarray(d, np.int64) for d in docs if len(d)]
        if stream:
            flat = np.concatenate(stream)
            doc_index = np.concatenate([np.full(len(d), i) for i, d in enumerate(stream)])
            offset = np.concatenate([np.arange(len(d)) for d in stream])
            overlap = width - seq_len                            # 1 for next-token rows
            num_rows = max(1, -(-(len(flat) - overlap) // seq_len))
            for r in range(num_rows):
                window = slice(r * seq_len, r * seq_len + width)
                tok, doc, off = flat[window], doc_index[window], offset[window]
                new_row()
                tokens[-1][:len(tok)] = tok
                segments[-1][:len(tok)] = doc - doc[0] + 1       # documents 1, 2, ... in the row
                # a document continued from the previous row restarts its positions at 0
                positions[-1][:len(tok)] = off - np.where(doc == doc[0], off[0], 0)
    else:
        used = width                     # slots used in the current row; "full" opens a new one
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


def pack_documents(docs: Sequence[Sequence[int]], seq_len: int, pad_id: int = 0,
                   mode: str = "greedy", shift: bool = True) -> dict[str, np.ndarray]:
    """Token-id documents -> rows of ``inputs``, ``targets``, ``segment_ids``, ``positions``,
    ``weights`` (all (N, seq_len); int32 except ``weights`` float32); with ``shift=False`` rows
    of ``tokens``, ``segment_ids``, ``positions`` (all (N, seq_len) int32)."""
    if mode not in MODES:
        raise UserError(f"unknown packing mode {mode!r} (known: {', '.join(MODES)})")
    if not shift:
        tokens, segments, positions = _row_slots(docs, seq_len, mode, pad_id, seq_len)
        return {TOKENS: tokens.astype(np.int32), "segment_ids": segments.astype(np.int32),
                "positions": positions.astype(np.int32)}
    tokens, segments, positions = _row_slots(docs, seq_len, mode, pad_id, seq_len + 1)
    seg_in, seg_next = segments[:, :-1], segments[:, 1:]
    weights = (seg_in > 0) & (seg_next == seg_in)
    return {
        "inputs": tokens[:, :-1].astype(np.int32),
        "targets": np.where(weights, tokens[:, 1:], pad_id).astype(np.int32),
        "segment_ids": seg_in.astype(np.int32),
        "positions": positions[:, :-1].astype(np.int32),
        "weights": weights.astype(np.float32),
    }


class PackedBatches(ArraySource):
    """Batches of packed rows: seeded shuffle per epoch, a pure function of the batch index."""

    def __init__(self, rows: dict[str, np.ndarray], batch_size: int, seed: int = 0,
                 shuffle: bool = True, drop_remainder: bool = True):
        super().__init__(rows, batch_size, seed, shuffle=shuffle, drop_remainder=drop_remainder)

    @property
    def fill(self) -> float:
        """Fraction of input slots holding real tokens (1 - padding waste)."""
        return float((self.arrays["segment_ids"] > 0).mean())
