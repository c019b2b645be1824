"""``pretrainx tokenize``: a corpus bigger than memory -> a folder of token shards (data/shards.py).

    pretrainx tokenize SOURCE [SOURCE ...] --tokenizer DIR|byte --out DIR [--workers N]
                       [--text-key text] [--doc-separator '\\n\\n'] [--shard-mb 32]
                       [--val-fraction 0.001] [--tfds-data-dir DIR]

SOURCE: files, folders or globs of text, JSONL (.jsonl / .json, plain, .gz or .zst) or Parquet,
or ``tfds:NAME[/CONFIG][:SPLIT]``: a TFDS text set already prepared in ``--tfds-data-dir`` (never
downloaded), one record's ``--text-key`` feature per document (data/document_streams.py). The
documents are read in order, one at a time; every ``--shard-mb`` MB of text (counted in
characters, before tokenization) closes a shard, so which documents a shard holds depends on
the corpus alone, never on the workers: the files are the same bytes whatever ``--workers``.
Worker processes tokenize whole shards (the tokenizer's batch encoding, one thread each) and
write them; the reader keeps at most ``workers + 1`` shards of text in flight, so memory is
bounded by the shard size, not the corpus. The reader also counts each document's UTF-8 bytes:
``manifest.json``'s ``split.train_bytes`` / ``split.val_bytes`` (bits per byte's denominator)
and each shard's ``text_bytes``.

A rerun into the same folder resumes: shards whose record and checksums are whole are kept and
skipped (their text is still read, to know where the next shard starts), the rest are written
again. The settings (sources with sizes, tokenizer, shard size, split) are recorded in
``tokenize.json`` at the start; a rerun with other settings starts an unfinished folder again
(a bad line fixed changes its file's size) and is refused in a finished one.
"""
from __future__ import annotations

import argparse
import collections
import glob
import logging
import multiprocessing
import os
import shutil
import sys
import time
from typing import Iterator

import numpy as np

from pretrainx.data import document_streams, readers, shards
from pretrainx.data import special_tokens as st
from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.errors import UserError

SETTINGS = "tokenize.json"
log = logging.getLogger(__name__)
_worker_tokenizer = None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pretrainx tokenize", description=__doc__.split("\n")[0])
    p.add_argument("sources", nargs="+", help="files, folders or globs of the corpus")
    p.add_argument("--tokenizer", required=True,
                   help="a saved tokenizer (dir or tokenizer.json), or 'byte'")
    p.add_argument("--out", required=True, help="the shards folder to write (or resume)")
    p.add_argument("--workers", type=int, default=1, help="tokenizing processes")
    p.add_argument("--text-key", default="text",
                   help="JSONL field / Parquet column / TFDS feature of the text")
    p.add_argument("--doc-separator", default="\n\n",
                   help="text files: what separates documents ('' : one per file)")
    p.add_argument("--shard-mb", type=float, default=32.0, help="text per shard, in MB (chars)")
    p.add_argument("--val-fraction", type=float, default=0.001,
                   help="the last documents holding this fraction of the tokens validate")
    p.add_argument("--tfds-data-dir", default="",
                   help="where tfds: sources are prepared (default ~/tensorflow_datasets)")
    return p


def _settings(args, files: list[str], tokenizer) -> dict:
    return {"format": shards.FORMAT,
            "sources": [document_streams.describe(f, args.text_key) for f in files],
            "tokenizer_sha256": shards.tokenizer_sha256(tokenizer),
            "vocab_size": int(tokenizer.vocab_size),
            "dtype": shards.token_dtype(tokenizer.vocab_size).name,
            "eos_id": st.id_or_none(tokenizer, st.EOS), "text_key": args.text_key,
            "doc_separator": args.doc_separator, "shard_chars": int(args.shard_mb * 1e6),
            "split": {"rule": "last documents holding val_fraction of the tokens",
                      "val_fraction": args.val_fraction}}


def _prepare_folder(out: str, settings: dict, tokenizer) -> None:
    """Create ``out``, or check that its earlier start had the same settings; clear temporaries.
    An unfinished folder (no manifest: the run stopped, e.g. on a bad line since fixed, which
    changes the source's size) started with other settings is cleared and started again: its
    shards belong to sources that are gone. A finished one is refused."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, SETTINGS)
    if os.path.exists(path) and shards.read_json(path) != settings:
        if os.path.exists(os.path.join(out, shards.MANIFEST)):
            raise UserError(f"{path}: this folder holds finished shards made with other settings "
                            f"(sources, sizes, tokenizer or shard size); use a new --out folder")
        stale = glob.glob(os.path.join(out, "shard_*"))
        log.warning("%s: an unfinished run with other settings (sources, sizes, tokenizer or shard "
                    "size): its %d shard files are removed and the folder starts again", out,
                    len(stale))
        for name in stale + [path]:
            os.remove(name)
    for leftover in glob.glob(os.path.join(out, "*.tmp*")):   # a killed run's partial files
        os.remove(leftover)
    if not os.path.exists(path):
        tokenizer.save(out)
        shards.write_json(path, settings)


def _planned_shards(files, settings) -> Iterator[list[str]]:
    """The documents of each shard, in order: a shard closes once it holds ``shard_chars``."""
    texts, chars = [], 0
    for text in document_streams.iter_documents(files, settings["text_key"],
                                                settings["doc_separator"]):
        texts.append(text)
        chars += len(text)
        if chars >= settings["shard_chars"]:
            yield texts
            texts, chars = [], 0
    if texts:
        yield texts


class _TailBytes:
    """Each document's UTF-8 bytes (``readers.utf8_bytes``, no EOS: the denominator of bits per
    byte, as ``readers.decoded_bytes`` counts it), kept only for the last shards the validation
    cut may still fall in: the cut's token (``_split``) never moves back as shards are added, so
    a shard that ends before it is dropped for good and memory stays bounded by the split, not
    the corpus. Counted here from the text the reader read, so whatever the worker count."""

    def __init__(self, val_fraction: float):
        self.val_fraction, self.per_doc, self.ends = val_fraction, {}, []

    def add_text(self, index: int, texts: list[str]) -> int:
        self.per_doc[index] = np.array([readers.utf8_bytes(t) for t in texts], np.int64)
        return int(self.per_doc[index].sum())

    def add_record(self, index: int, tokens: int) -> None:
        self.ends.append((self.ends[-1] if self.ends else 0) + tokens)
        target = int(self.ends[-1] * (1 - self.val_fraction))
        for k in [k for k in self.per_doc if k <= index and self.ends[k] <= target]:
            del self.per_doc[k]

    def after(self, index: int, doc: int) -> int:
        """Bytes of shard ``index``'s documents from ``doc`` on."""
        return int(self.per_doc[index][doc:].sum())


def _init_worker(tokenizer_path: str) -> None:
    # One Rust thread per process: --workers says how many cores tokenize.
    os.environ["RAYON_NUM_THREADS"] = "1"
    global _worker_tokenizer
    _worker_tokenizer = tokenizer_lib.load(tokenizer_path)


def _tokenize_shard(out: str, index: int, texts: list[str], settings: dict,
                    text_bytes: int) -> dict:
    tokens, offsets = shards.encode_shard(_worker_tokenizer, texts, settings["eos_id"],
                                          np.dtype(settings["dtype"]))
    return shards.write_shard(out, index, tokens, offsets, sum(len(t) for t in texts), text_bytes)


def tokenize(args) -> dict:
    """Write (or finish) the shards folder ``args.out``; returns its manifest."""
    files = document_streams.expand_sources(args.sources, args.tfds_data_dir or None)
    if args.tokenizer != "byte" and not os.path.exists(os.path.expanduser(args.tokenizer)):
        raise FileNotFoundError(f"--tokenizer {args.tokenizer!r}: give a saved tokenizer (made by "
                                f"`pretrainx tokenizer train`, or a run's workdir) or 'byte'")
    tokenizer = tokenizer_lib.from_spec(args.tokenizer)
    settings = _settings(args, files, tokenizer)
    _prepare_folder(args.out, settings, tokenizer)
    records, kept = [], 0
    tail = _TailBytes(args.val_fraction)

    def finish(head) -> None:
        records.append(head if isinstance(head, dict) else head.get())
        tail.add_record(len(records) - 1, records[-1]["tokens"])

    ctx = multiprocessing.get_context("spawn")   # no fork: the tokenizer's threads
    with ctx.Pool(args.workers, _init_worker, (os.path.join(args.out, shards.TOKENIZER),)) as pool:
        pending = collections.deque()
        for index, texts in enumerate(_planned_shards(files, settings)):
            text_bytes = tail.add_text(index, texts)
            done = shards.finished_shard(args.out, index)
            if done is not None:
                kept += 1
                done["text_bytes"] = text_bytes     # a shard kept from before the field existed
            pending.append(done or pool.apply_async(_tokenize_shard,
                                                    (args.out, index, texts, settings, text_bytes)))
            while len(pending) > args.workers or (pending and isinstance(pending[0], dict)):
                finish(pending.popleft())
        while pending:
            finish(pending.popleft())
    manifest = _manifest(args.out, settings, records, tail)
    manifest["kept_shards"] = kept
    return manifest


def _split(out: str, records: list[dict], val_fraction: float, tail: _TailBytes) -> dict:
    """The train/validation cut: the start of the document holding the token at
    ``(1 - val_fraction)`` of the stream, so the last documents, at least ``val_fraction`` of the
    tokens and one document when > 0, validate and no document is cut. With each side's UTF-8
    bytes (``val_bytes``: what the shards kind's bits per byte divides by)."""
    total = sum(r["tokens"] for r in records)
    cut, seen, val_bytes = total, 0, 0
    if val_fraction > 0 and total:
        target = int(total * (1 - val_fraction))
        for index, r in enumerate(records):
            if seen + r["tokens"] > target:
                offsets = np.load(os.path.join(out, r["name"] + ".docs.npy"))
                k = int(np.searchsorted(offsets, target - seen, side="right")) - 1
                cut = seen + int(offsets[k])
                val_bytes = tail.after(index, k) + sum(s["text_bytes"] for s in records[index + 1:])
                break
            seen += r["tokens"]
    return {"train_tokens": cut, "val_tokens": total - cut,
            "train_bytes": sum(r["text_bytes"] for r in records) - val_bytes,
            "val_bytes": val_bytes}


def _manifest(out: str, settings: dict, records: list[dict], tail: _TailBytes) -> dict:
    split = dict(settings["split"], **_split(out, records, settings["split"]["val_fraction"],
                                             tail))
    manifest = dict(settings, split=split, shards=records,
                    tokens=sum(r["tokens"] for r in records), docs=sum(r["docs"] for r in records))
    shards.write_json(os.path.join(out, shards.MANIFEST), manifest)
    return manifest


def tokenize_once(folder: str, argv: list[str]) -> str:
    """``folder``, made by ``pretrainx tokenize ARGV --out folder`` unless it is already whole;
    safe when several processes ask at once (a config loaded by each test worker): each writes
    a folder of its own beside it and renames it into place, the first rename wins."""
    if os.path.exists(os.path.join(folder, shards.MANIFEST)):
        return folder
    scratch = f"{folder}.tmp{os.getpid()}"
    tokenize(_parser().parse_args([*argv, "--out", scratch]))
    try:
        os.rename(scratch, folder)
    except OSError:           # another process's folder is there (or an unfinished old one)
        shutil.rmtree(scratch, ignore_errors=True)
        if not os.path.exists(os.path.join(folder, shards.MANIFEST)):
            raise UserError(f"{folder} holds no {shards.MANIFEST} (an unfinished tokenize): "
                            f"remove it, or finish it with pretrainx tokenize ... --out {folder}")
    return folder


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.workers < 1 or args.shard_mb <= 0 or not 0 <= args.val_fraction < 1:
        raise UserError("--workers must be >= 1, --shard-mb > 0 and --val-fraction in [0, 1)")
    start = time.perf_counter()
    manifest = tokenize(args)
    seconds = time.perf_counter() - start
    source_mb = sum(s["text_bytes"] for s in manifest["shards"]) / 1e6   # UTF-8 text read
    print(f"{args.out}: {manifest['tokens']} tokens ({manifest['dtype']}) in "
          f"{len(manifest['shards'])} shards ({manifest['kept_shards']} kept from an earlier run), "
          f"{manifest['docs']} documents, {manifest['split']['val_tokens']} validation tokens; "
          f"{source_mb:.1f} MB of text in {seconds:.1f}s = "
          f"{source_mb / max(seconds, 1e-9):.2f} MB/s")
    return 0
