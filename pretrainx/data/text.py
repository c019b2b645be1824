"""The one text pipeline: source -> documents -> train/val split -> tokenizer -> windows or rows.

1. **Source** (``data.kind``): ``"text"`` reads one corpus (a file, a glob or list of files joined
   in order, ``"stdlib"`` for the standard library's source, or a TFDS text set with
   ``data.tfds_name``), one document unless ``data.doc_separator`` cuts it into several;
   ``"jsonl"`` takes field ``data.text_key`` of each record; ``"text_files"`` takes each file as a
   document. ``data.max_bytes`` / ``data.max_docs`` cut the corpus short.
2. **Split** (``data.split``, the one rule for every source): ``"chars"`` (the default) is
   nanoGPT's: the first ``1 - val_fraction`` of the characters, counted over the documents in
   order, train and the rest validate, so a document may be cut in two; ``"documents"``: the last
   ``val_fraction`` of the documents validate (at least one), none is cut.
3. **Tokenizer** (``data.tokenizer``, see ``tokenizer.py``): a char vocabulary is fit on all the
   text, a subword one is trained on the training part only; a resumed run passes the tokenizer it
   saved (``tokenizer.json`` in the workdir) and nothing is fit or trained again.
4. **Layout** (``data.packing``): ``"stream"`` (the default) joins the documents, with EOS
   between them where the vocabulary has one, into one token stream read as windows
   (``data.sampling`` "random" as nanoGPT's ``get_batch``, or "sequential"; validation always
   reads fixed random windows, as nanoGPT's ``estimate_loss``); ``"greedy"`` / ``"concat"`` /
   ``"pad"`` pack documents (BOS ... EOS where the vocabulary has them) into rows with segment ids
   (``packing.py``).

Batches hold ``inputs``/``targets`` (plus ``segment_ids``, ``positions``, ``weights`` when
packed) cut from ``seq_len + 1`` tokens, or raw ``tokens`` rows of ``seq_len`` when the objective
asks for the ``tokens`` field (``Objective.data_request``).
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np

from pretrainx.data import rng as streams
from pretrainx.data import packing as packing_lib
from pretrainx.data import readers
from pretrainx.data import special_tokens as st
from pretrainx.data import text_cache
from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.data.base import Dataset, raw_tokens, register
from pretrainx.data.sources import TokenWindows
from pretrainx.errors import UserError

log = logging.getLogger(__name__)

SPLITS = ("chars", "documents")
LAYOUTS = ("stream",) + packing_lib.MODES


@dataclasses.dataclass(frozen=True)
class TextOptions:
    """The pipeline's fields of ``config.data`` (their defaults: ``config/text.py``'s text_data)."""
    tokenizer: str
    val_fraction: float
    split: str
    packing: str
    sampling: str
    doc_separator: str
    text_key: str
    max_docs: int
    max_bytes: int
    decode_errors: str                 # bytes that are not UTF-8: "replace" (warn) | "strict"

    @classmethod
    def from_config(cls, data_config) -> "TextOptions":
        opts = cls(**{f.name: data_config[f.name] for f in dataclasses.fields(cls)})
        packing = "greedy" if opts.packing == "packed" else opts.packing   # the old name of greedy
        opts = dataclasses.replace(opts, packing=packing)
        if opts.split not in SPLITS:
            raise UserError(f"data.split must be one of {SPLITS}, got {opts.split!r}")
        if opts.packing not in LAYOUTS:
            raise UserError(f"data.packing must be one of {LAYOUTS}, got {opts.packing!r}")
        if not 0 <= opts.val_fraction < 1:
            raise UserError(f"data.val_fraction must be in [0, 1), got {opts.val_fraction}")
        return opts


@dataclasses.dataclass(frozen=True)
class Piece:
    """A document, or the part of one on one side of the split."""
    text: str
    starts: bool = True      # holds the document's beginning (gets BOS when packed)
    ends: bool = True        # holds the document's end (gets EOS)


def split_documents(docs: list[str], val_fraction: float, by: str = "chars"):
    """(train pieces, val pieces) of ``docs`` by the split rule ``by`` (module docstring)."""
    if by == "documents":
        if val_fraction == 0 or len(docs) < 2:
            return [Piece(d) for d in docs], []
        cut = min(len(docs) - 1, int(round(len(docs) * (1 - val_fraction))))
        return [Piece(d) for d in docs[:cut]], [Piece(d) for d in docs[cut:]]
    if by != "chars":
        raise UserError(f"unknown split rule {by!r}; known {SPLITS}")
    n_train = int(sum(len(d) for d in docs) * (1.0 - val_fraction))
    train, val, seen = [], [], 0
    for d in docs:
        if seen + len(d) <= n_train:
            train.append(Piece(d))
        elif seen >= n_train:
            val.append(Piece(d))
        else:                                   # the document the cut falls in
            head = n_train - seen
            train.append(Piece(d[:head], starts=True, ends=False))
            val.append(Piece(d[head:], starts=False, ends=True))
        seen += len(d)
    return [p for p in train if p.text], [p for p in val if p.text]


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """nanoGPT's split of one text: the first ``1 - val_fraction`` of the characters train."""
    cut = int(len(text) * (1.0 - val_fraction))
    return text[:cut], text[cut:]


def _encode(tok, texts: list[str]) -> list[list[int]]:
    encode_batch = getattr(tok, "encode_batch", None)
    return encode_batch(texts) if encode_batch is not None else [tok.encode(t) for t in texts]


@dataclasses.dataclass(frozen=True)
class _Rows:
    """What both layouts need to cut encoded text into batches."""
    tokenizer: object
    opts: TextOptions
    batch_size: int
    eval_batch_size: int
    seq_len: int
    seed: int
    shift: bool              # inputs/targets shifted by one (else raw rows of seq_len tokens)

    def special(self, name: str):
        return st.id_or_none(self.tokenizer, name)


def build_text_dataset(docs: list[str], data_config, *, batch_size: int, eval_batch_size: int,
                       seq_len: int, seed: int, fields=None, tokenizer=None,
                       special_tokens=()) -> Dataset:
    """Documents -> the Dataset the runner trains on (steps 2-4 of the module docstring)."""
    opts = TextOptions.from_config(data_config)
    keep_bytes = (isinstance(tokenizer, tokenizer_lib.ByteTokenizer) if tokenizer is not None
                  else opts.tokenizer == "byte")
    docs = readers.decode_policy(docs, keep_bytes=keep_bytes, policy=opts.decode_errors,
                                 where=data_config.path)
    train_pieces, val_pieces = split_documents(docs, opts.val_fraction, opts.split)
    if tokenizer is None:
        tokenizer = tokenizer_lib.from_spec(opts.tokenizer, [p.text for p in train_pieces],
                                            list(docs))
    # before any text is encoded, so a fresh and a resumed run (whose saved tokenizer has them
    # already) make the same rows
    tokenizer = tokenizer_lib.with_special_tokens(tokenizer, special_tokens)
    layout = _Rows(tokenizer, opts, batch_size, eval_batch_size, seq_len, seed,
                   shift=not raw_tokens(fields))
    info = {"chars": sum(len(d) for d in docs),
            "val_chars": sum(len(p.text) for p in val_pieces),
            "val_bytes": sum(readers.utf8_bytes(p.text) for p in val_pieces),
            "train_docs": len(train_pieces), "val_docs": len(val_pieces),
            "vocab_size": int(tokenizer.vocab_size), "split": opts.split, "packing": opts.packing}
    build = _stream_dataset if opts.packing == "stream" else _packed_dataset
    return build(layout, train_pieces, val_pieces, info)


def _stream_dataset(layout: _Rows, train_pieces, val_pieces, info: dict) -> Dataset:
    """``data.packing = "stream"``: the documents joined into one stream read as windows."""
    return _windows_dataset(layout, _stream_ids(layout, train_pieces),
                            _stream_ids(layout, val_pieces), info)


def _stream_ids(layout: _Rows, pieces) -> np.ndarray:
    # EOS separates documents (GPT-2's <|endoftext|>): after each document's end but the
    # stream's last. Char/byte vocabularies have none; the documents are then simply
    # concatenated. One document (the "text" kind's corpus) is exactly nanoGPT's stream.
    eos = layout.special(st.EOS)
    ids = _encode(layout.tokenizer, [p.text for p in pieces])
    last = len(pieces) - 1
    parts = [np.asarray(s + ([eos] if eos is not None and p.ends and i < last else []),
                        np.int32) for i, (s, p) in enumerate(zip(ids, pieces))]
    return np.concatenate(parts) if parts else np.zeros((0,), np.int32)


def _windows_dataset(layout: _Rows, train_ids, val_ids, info: dict) -> Dataset:
    train = TokenWindows(train_ids, layout.batch_size, layout.seq_len, layout.seed,
                         layout.opts.sampling, stream=streams.WINDOW_STARTS_TRAIN,
                         shift=layout.shift)
    val = None
    width = layout.seq_len + 1 if layout.shift else layout.seq_len
    if len(val_ids) > width:
        val = TokenWindows(val_ids, layout.eval_batch_size, layout.seq_len, layout.seed, "random",
                           stream=streams.WINDOW_STARTS_VAL, shift=layout.shift)
    elif len(val_ids):
        log.warning("validation text has %d tokens, fewer than one window of %d: no "
                    "validation", len(val_ids), width)
    info.update(train_tokens=int(len(train_ids)), val_tokens=int(len(val_ids)))
    return Dataset(train=train, val=val, tokenizer=layout.tokenizer, info=info)


def _packed_dataset(layout: _Rows, train_pieces, val_pieces, info: dict) -> Dataset:
    """``data.packing`` one of ``packing.MODES``: documents packed into rows with segment ids."""
    bos, eos, pad = layout.special(st.BOS), layout.special(st.EOS), layout.special(st.PAD)
    pad = 0 if pad is None else pad

    def rows(pieces):
        ids = [([bos] if bos is not None and p.starts else []) + s +
               ([eos] if eos is not None and p.ends else [])
               for s, p in zip(_encode(layout.tokenizer, [p.text for p in pieces]), pieces)]
        packed = packing_lib.pack_documents(ids, layout.seq_len, pad_id=pad,
                                            mode=layout.opts.packing, shift=layout.shift)
        return packed, sum(len(s) for s in ids)

    train_rows, train_tokens = rows(train_pieces)
    val_rows, val_tokens = rows(val_pieces)
    train = packing_lib.PackedBatches(train_rows, layout.batch_size, layout.seed, shuffle=True)
    num_val = len(next(iter(val_rows.values())))
    val = (packing_lib.PackedBatches(val_rows, layout.eval_batch_size, layout.seed,
                                     shuffle=False, drop_remainder=False) if num_val else None)
    info.update(train_tokens=train_tokens, val_tokens=val_tokens,
                train_rows=len(next(iter(train_rows.values()))),
                packing_fill=round(train.fill, 4), bos_id=bos, eos_id=eos, pad_id=pad)
    return Dataset(train=train, val=val, tokenizer=layout.tokenizer, info=info)


# ---- sources: data.kind -> documents ---------------------------------------------------------

def _corpus_documents(data_config) -> list[str]:
    if data_config.tfds_name:
        text = readers.read_tfds_text(data_config)
    else:
        text = readers.read_corpus(data_config.path, data_config.max_bytes)
    separator = data_config.doc_separator
    return readers.split_on_separator(text, separator) if separator else [text]


def _jsonl_documents(data_config) -> list[str]:
    return readers.read_jsonl(data_config.path, data_config.text_key,
                              data_config.max_docs)


def _file_documents(data_config) -> list[str]:
    return readers.read_text_files(data_config.path)


DOCUMENT_SOURCES = {"text": _corpus_documents, "jsonl": _jsonl_documents,
                    "text_files": _file_documents}


def _builder(read_documents):
    def build(data_config, *, batch_size, eval_batch_size, seq_len, seed, fields=None,
              tokenizer=None, special_tokens=()) -> Dataset:
        cache_entry = text_cache.entry_folder(data_config, special_tokens)
        cached = text_cache.load(cache_entry, tokenizer)
        if cached is not None:
            train_ids, val_ids, tokenizer, info = cached
            layout = _Rows(tokenizer, TextOptions.from_config(data_config), batch_size,
                           eval_batch_size, seq_len, seed, shift=not raw_tokens(fields))
            return _windows_dataset(layout, train_ids, val_ids, info)
        docs = read_documents(data_config)
        if not docs:
            raise UserError(f"no documents in {data_config.path!r} (config.data)")
        dataset = build_text_dataset(docs, data_config, batch_size=batch_size,
                                     eval_batch_size=eval_batch_size, seq_len=seq_len, seed=seed,
                                     fields=fields, tokenizer=tokenizer,
                                     special_tokens=special_tokens)
        if cache_entry is not None:     # a validation text shorter than a window has no val
            val_ids = dataset.val.tokens if dataset.val is not None else np.zeros((0,), np.int32)
            text_cache.save(cache_entry, dataset.train.tokens, val_ids, dataset.tokenizer,
                            dict(dataset.info))
        return dataset
    return build


for _kind, _read in DOCUMENT_SOURCES.items():
    register(_kind)(_builder(_read))
