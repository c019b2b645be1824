"""Token streams of large text corpora, tokenized once and kept on disk.

A text run reads its corpus, fits or trains its tokenizer and encodes every document at each start
and resume: 71 s and 2.37 GB before the first step for 100 MB of text on the 2-core CPU. When the
corpus (``data.kind`` "text", "jsonl" or "text_files", ``data.packing = "stream"``) weighs at least
``data.cache_min_mb``, the first start saves what that work produced: the tokenizer, the train and
validation token streams (``.npy``, read back memory-mapped) and the dataset's counts. Later starts
with the same source and the same tokenizing options read them instead.

The key is the sha256 of the source files' absolute paths, sizes and modification times and of
every data field that changes the tokens (the ``KEY_FIELDS``), plus the special tokens the
objective adds. The tokenizer itself is not in the key: a resumed run passes the tokenizer it
saved, which a hit must equal (else the corpus is encoded again). The batches are the uncached
pipeline's exactly (tests/test_text_cache.py), so a recipe's numbers do not depend on the cache.

An entry is written into a temporary folder renamed into place, so a killed first start leaves no
half entry under a key. Corpora too big for memory even once belong in ``pretrainx tokenize``'s
shards (``data.kind = "shards"``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile

import numpy as np

from pretrainx.data import readers, shards
from pretrainx.data import tokenizer as tokenizer_lib

log = logging.getLogger(__name__)

CACHE_ENV = "PRETRAINX_TOKEN_CACHE"
KINDS = ("text", "jsonl", "text_files")
#: the data fields that change the token streams
KEY_FIELDS = ("kind", "tokenizer", "val_fraction", "split", "doc_separator", "text_key",
              "max_docs", "max_bytes", "decode_errors")
STREAMS = ("train", "val")


def default_cache_dir() -> str:
    return os.environ.get(CACHE_ENV, os.path.join(os.path.expanduser("~"), ".cache", "pretrainx",
                                                  "tokens"))


def _source_files(data_config) -> list[str]:
    if data_config.path == "stdlib":
        return readers.stdlib_source_files()
    return readers.expand_paths(data_config.path)


def entry_folder(data_config, special_tokens) -> str | None:
    """The cache folder for this corpus and these options, or None where the cache does not
    apply (another kind or layout, TFDS, a corpus under ``data.cache_min_mb``)."""
    if (data_config.kind not in KINDS or data_config.packing != "stream" or data_config.tfds_name
            or float(data_config.cache_min_mb) <= 0):
        return None
    files = _source_files(data_config)
    stats = [(os.path.abspath(f), os.stat(f)) for f in files]
    if sum(s.st_size for _, s in stats) < float(data_config.cache_min_mb) * 1e6:
        return None
    identity = {"files": [[f, s.st_size, s.st_mtime_ns] for f, s in stats],
                "options": {k: data_config[k] for k in KEY_FIELDS},
                "special_tokens": list(special_tokens)}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
    return os.path.join(data_config.cache_dir or default_cache_dir(), key)


def load(folder: str | None, tokenizer=None):
    """(train ids, val ids, tokenizer, info) of a finished entry, the ids memory-mapped; None
    when there is none, or when it was made with another tokenizer than ``tokenizer``."""
    if folder is None or not os.path.exists(os.path.join(folder, "info.json")):
        return None
    cached = tokenizer_lib.load(folder)
    if tokenizer is not None and shards.tokenizer_sha256(tokenizer) != shards.tokenizer_sha256(cached):
        log.info("token cache %s holds another tokenizer than the run's: encoding again", folder)
        return None
    with open(os.path.join(folder, "info.json"), encoding="utf-8") as f:
        info = json.load(f)
    ids = [np.load(os.path.join(folder, f"{name}.npy"), mmap_mode="r") for name in STREAMS]
    log.info("token cache: %s (%d train, %d val tokens)", folder, len(ids[0]), len(ids[1]))
    return ids[0], ids[1], cached, info


def save(folder: str | None, train_ids: np.ndarray, val_ids: np.ndarray, tokenizer,
         info: dict) -> None:
    """Write an entry (no-op without a folder, or when another process wrote it first)."""
    if folder is None or os.path.exists(folder):
        return
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".partial-", dir=parent)
    try:
        for name, ids in zip(STREAMS, (train_ids, val_ids)):
            np.save(os.path.join(tmp, f"{name}.npy"), np.asarray(ids, np.int32), allow_pickle=False)
        tokenizer.save(tmp)
        with open(os.path.join(tmp, "info.json"), "w", encoding="utf-8") as f:
            json.dump(info, f, indent=1)
        os.rename(tmp, folder)
        log.info("token cache: wrote %s", folder)
    except OSError as e:       # a full or read-only cache disk costs the next start, not this one
        log.warning("token cache: could not write %s (%s)", folder, e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
