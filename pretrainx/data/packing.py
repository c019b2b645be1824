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

The ``"packed_text"`` kind builds rows from documents of a text file (split by
``data.doc_separator``) or of a JSONL file (``data.text_key``), with BOS/EOS around each document
when the tokenizer has them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from pretrainx.data.base import Dataset, register
from pretrainx.data.sources import ArraySource, _cfg, read_jsonl, split_off_validation

MODES = ("greedy", "concat", "pad")


def _pieces(docs: Sequence[Sequence[int]], width: int, mode: str):
    """Documents cut to at most ``width`` tokens (the part of a long document past a row)."""
    for d in docs:
        d = np.asarray(d, np.int64)
        if len(d) == 0:
            continue
        if mode == "pad" or len(d) <= width:
            yield d[:width]
        else:
            # stride width-1: a piece starts with the previous piece's last token, so the pair
            # across the cut is still trained (that token is an input in the next piece)
            for start in range(0, len(d) - 1, width - 1):
                yield d[start:start + width]


def _row_slots(docs, seq_len: int, mode: str, pad_id: int):
    """(tokens, segments, positions) of every row, each (N, seq_len + 1) int64."""
    width = seq_len + 1
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
            num_rows = max(1, -(-(len(flat) - 1) // seq_len))    # stride T: 1-slot overlap
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
        for piece in _pieces(docs, width, mode):
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
                   mode: str = "greedy") -> dict[str, np.ndarray]:
    """Token-id documents -> rows of ``inputs``, ``targets``, ``segment_ids``, ``positions``,
    ``weights`` (all (N, seq_len); int32 except ``weights`` float32)."""
    if mode not in MODES:
        raise ValueError(f"unknown packing mode {mode!r} (known: {', '.join(MODES)})")
    tokens, segments, positions = _row_slots(docs, seq_len, mode, pad_id)
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


def split_documents(text: str, separator: str) -> list[str]:
    """Non-blank documents of ``text`` separated by ``separator`` (e.g. "\\n" or "\\n\\n")."""
    return [d for d in text.split(separator) if d.strip()]


def packed_documents_dataset(docs: list[str], config, *, batch_size, eval_batch_size, seq_len,
                             seed) -> Dataset:
    """Text documents -> tokenized with BOS/EOS -> packed rows -> train/val PackedBatches."""
    from pretrainx.data import special_tokens as st
    from pretrainx.data import subword
    mode = _cfg(config, "packing", "greedy")
    mode = "greedy" if mode == "packed" else mode
    train_docs, val_docs = split_off_validation(docs, _cfg(config, "val_fraction", 0.1))
    tok = subword.resolve(_cfg(config, "tokenizer", "byte"), train_docs, docs)

    def special(name):
        has = getattr(tok, "has_token", None)
        return tok.token_id(name) if has and has(name) else None

    # char/byte tokenizers have no BOS/EOS: the segment ids alone then mark document boundaries
    bos, eos, pad = special(st.BOS), special(st.EOS), special(st.PAD)
    pad = 0 if pad is None else pad
    encode_batch = getattr(tok, "encode_batch", None) or (lambda ts: [tok.encode(t) for t in ts])

    def rows(texts):
        ids = [([bos] if bos is not None else []) + s + ([eos] if eos is not None else [])
               for s in encode_batch(texts)]
        return pack_documents(ids, seq_len, pad_id=pad, mode=mode), sum(len(s) for s in ids)

    train_rows, train_tokens = rows(train_docs)
    val_rows, val_tokens = rows(val_docs)
    train = PackedBatches(train_rows, batch_size, seed, shuffle=True)
    val = (PackedBatches(val_rows, eval_batch_size, seed, shuffle=False, drop_remainder=False)
           if len(val_rows["inputs"]) else None)
    info = {"train_tokens": train_tokens, "val_tokens": val_tokens, "train_docs": len(train_docs),
            "val_docs": len(val_docs), "train_rows": len(train_rows["inputs"]),
            "packing_fill": round(train.fill, 4), "vocab_size": int(tok.vocab_size),
            "bos_id": bos, "eos_id": eos, "pad_id": pad}
    return Dataset(train=train, val=val, tokenizer=tok, info=info)


@register("packed_text")
def build_packed_text(config, *, batch_size, eval_batch_size, seq_len, seed) -> Dataset:
    """Fields: path (.txt, or .jsonl[.gz] with text_key), doc_separator ("\\n\\n" paragraphs |
    "\\n" lines), tokenizer, val_fraction, packing ("greedy" | "concat" | "pad"), max_bytes."""
    path = config.path
    if ".jsonl" in path:
        docs = read_jsonl(path, _cfg(config, "text_key", "text"), _cfg(config, "max_docs", 0))
    else:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        max_bytes = _cfg(config, "max_bytes", 0)
        text = text[:max_bytes] if max_bytes else text
        docs = split_documents(text, _cfg(config, "doc_separator", "\n\n"))
    return packed_documents_dataset(docs, config, batch_size=batch_size,
                                    eval_batch_size=eval_batch_size, seq_len=seq_len, seed=seed)
