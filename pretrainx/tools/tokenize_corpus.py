"""``pretrainx tokenize``: a corpus bigger than memory -> a folder of token shards (data/shards.py).

    pretrainx tokenize SOURCE [SOURCE ...] --tokenizer DIR|byte --out DIR [--workers N]
                       [--text-key text] [--doc-separator '\\n\\n'] [--shard-mb 32]
                       [--val-fraction 0.001]

SOURCE: files, folders or globs of text, JSONL (.jsonl / .json, plain, .gz or .zst) or Parquet
(data/document_streams.py). The documents are read in order, one at a time; every
``--shard-mb`` MB of text (counted in characters, before tokenization) closes a shard, so which
documents a shard holds depends on the corpus alone, never on the workers: the files are the same
bytes whatever ``--workers``. Worker processes tokenize whole shards (the tokenizer's batch
encoding, one thread each) and write them; the reader keeps at most ``workers + 1`` shards of
text in flight, so memory is bounded by the shard size, not the corpus.

A rerun into the same folder resumes: shards whose record and checksums are whole are kept and
skipped (their text is still read, to know where the next shard starts), the rest are written
again. The settings (sources with sizes, tokenizer, shard size, split) are recorded in
``tokenize.json`` at the start; a rerun with other settings is refused.
"""
from __future__ import annotations

import argparse
import collections
import glob
import multiprocessing
import os
import sys
import time
from typing import Iterator

from pretrainx.data import document_streams, shards
from pretrainx.data import special_tokens as st
from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.errors import UserError

SETTINGS = "tokenize.json"
_worker_tokenizer = None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pretrainx tokenize", description=__doc__.split("\n")[0])
    p.add_argument("sources", nargs="+", help="files, folders or globs of the corpus")
    p.add_argument("--tokenizer", required=True,
                   help="a saved tokenizer (dir or tokenizer.json), or 'byte'")
    p.add_argument("--out", required=True, help="the shards folder to write (or resume)")
    p.add_argument("--workers", type=int, default=1, help="tokenizing processes")
    p.add_argument("--text-key", default="text", help="JSONL field / Parquet column of the text")
    p.add_argument("--doc-separator", default="\n\n",
                   help="text files: what separates documents ('' : one per file)")
    p.add_argument("--shard-mb", type=float, default=32.0, help="text per shard, in MB (chars)")
    p.add_argument("--val-fraction", type=float, default=0.001,
                   help="the last documents holding this fraction of the tokens validate")
    return p


def _settings(args, files: list[str], tokenizer) -> dict:
    return {"format": shards.FORMAT,
            "sources": [{"path": os.path.abspath(f), "bytes": os.path.getsize(f)} for f in files],
            "tokenizer_sha256": shards.tokenizer_sha256(tokenizer),
            "vocab_size": int(tokenizer.vocab_size),
            "dtype": shards.token_dtype(tokenizer.vocab_size).name,
            "eos_id": st.id_or_none(tokenizer, st.EOS), "text_key": args.text_key,
            "doc_separator": args.doc_separator, "shard_chars": int(args.shard_mb * 1e6),
            "split": {"rule": "last documents holding val_fraction of the tokens",
                      "val_fraction": args.val_fraction}}


def _prepare_folder(out: str, settings: dict, tokenizer) -> None:
    """Create ``out``, or check that its earlier start had the same settings; clear temporaries."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, SETTINGS)
    if os.path.exists(path) and shards.read_json(path) != settings:
        raise UserError(f"{path}: this folder was started with other settings (sources, sizes, "
                        f"tokenizer or shard size); use a new --out folder")
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


def _init_worker(tokenizer_path: str) -> None:
    # One Rust thread per process: --workers says how many cores tokenize.
    os.environ["RAYON_NUM_THREADS"] = "1"
    global _worker_tokenizer
    _worker_tokenizer = tokenizer_lib.load(tokenizer_path)


def _tokenize_shard(out: str, index: int, texts: list[str], settings: dict) -> dict:
    import numpy as np
    tokens, offsets = shards.encode_shard(_worker_tokenizer, texts, settings["eos_id"],
                                          np.dtype(settings["dtype"]))
    return shards.write_shard(out, index, tokens, offsets, sum(len(t) for t in texts))


def tokenize(args) -> dict:
    """Write (or finish) the shards folder ``args.out``; returns its manifest."""
    files = document_streams.expand_sources(args.sources)
    if args.tokenizer != "byte" and not os.path.exists(os.path.expanduser(args.tokenizer)):
        raise FileNotFoundError(f"--tokenizer {args.tokenizer!r}: give a saved tokenizer (made by "
                                f"`pretrainx tokenizer train`, or a run's workdir) or 'byte'")
    tokenizer = tokenizer_lib.from_spec(args.tokenizer)
    settings = _settings(args, files, tokenizer)
    _prepare_folder(args.out, settings, tokenizer)
    records, kept = [], 0
    ctx = multiprocessing.get_context("spawn")   # no fork: the tokenizer's threads
    with ctx.Pool(args.workers, _init_worker, (os.path.join(args.out, shards.TOKENIZER),)) as pool:
        pending = collections.deque()
        for index, texts in enumerate(_planned_shards(files, settings)):
            done = shards.finished_shard(args.out, index)
            if done is not None:
                kept += 1
            pending.append(done or pool.apply_async(_tokenize_shard,
                                                    (args.out, index, texts, settings)))
            while len(pending) > args.workers or (pending and isinstance(pending[0], dict)):
                head = pending.popleft()
                records.append(head if isinstance(head, dict) else head.get())
        records += [p if isinstance(p, dict) else p.get() for p in pending]
    manifest = _manifest(args.out, settings, records)
    manifest["kept_shards"] = kept
    return manifest


def _split(out: str, records: list[dict], val_fraction: float) -> dict:
    """The train/validation cut: the start of the document holding the token at
    ``(1 - val_fraction)`` of the stream, so the last documents, at least ``val_fraction`` of the
    tokens and one document when > 0, validate and no document is cut."""
    import numpy as np
    total = sum(r["tokens"] for r in records)
    cut, seen = total, 0
    if val_fraction > 0 and total:
        target = int(total * (1 - val_fraction))
        for r in records:
            if seen + r["tokens"] > target:
                offsets = np.load(os.path.join(out, r["name"] + ".docs.npy"))
                k = int(np.searchsorted(offsets, target - seen, side="right")) - 1
                cut = seen + int(offsets[k])
                break
            seen += r["tokens"]
    return {"train_tokens": cut, "val_tokens": total - cut}


def _manifest(out: str, settings: dict, records: list[dict]) -> dict:
    split = dict(settings["split"], **_split(out, records, settings["split"]["val_fraction"]))
    manifest = dict(settings, split=split, shards=records,
                    tokens=sum(r["tokens"] for r in records), docs=sum(r["docs"] for r in records))
    shards.write_json(os.path.join(out, shards.MANIFEST), manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.workers < 1 or args.shard_mb <= 0 or not 0 <= args.val_fraction < 1:
        raise UserError("--workers must be >= 1, --shard-mb > 0 and --val-fraction in [0, 1)")
    start = time.perf_counter()
    manifest = tokenize(args)
    seconds = time.perf_counter() - start
    source_mb = sum(s["bytes"] for s in manifest["sources"]) / 1e6
    print(f"{args.out}: {manifest['tokens']} tokens ({manifest['dtype']}) in "
          f"{len(manifest['shards'])} shards ({manifest['kept_shards']} kept from an earlier run), "
          f"{manifest['docs']} documents, {manifest['split']['val_tokens']} validation tokens; "
          f"{source_mb:.1f} MB in {seconds:.1f}s = {source_mb / max(seconds, 1e-9):.2f} MB/s")
    return 0
