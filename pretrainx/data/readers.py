"""Reading text from disk: files, globs, the Python standard library's source, JSONL records,
TFDS text data sets. Everything here returns plain strings; ``text.py`` turns them into batches.

Every reader of a user's file goes through ``open_data_file`` (a directory, an empty file or a
binary file given as text is refused) and, for JSONL, ``jsonl_records`` / ``record_field``: a bad
file is one ``CorpusError`` line naming the file, and the line for line-based formats.

Bytes that are not UTF-8 are kept, as lone surrogates (Python's "surrogateescape"), so that the
byte tokenizer reads the file's bytes exactly; ``decode_policy`` then replaces them (with a
warning that counts them) or refuses the data for every other tokenizer (``data.decode_errors``).
"""
from __future__ import annotations

import contextlib
import glob
import gzip
import json
import logging
import os
import re
import sysconfig
import zlib

from pretrainx.errors import UnknownName, UserError

log = logging.getLogger(__name__)

#: bytes read from the head of a text file to tell a binary file (one with a NUL byte) from text
SNIFF_BYTES = 8192
STDLIB = "stdlib"   # data.path value: the running Python's standard library sources (*.py)
ENCODING, ERRORS = "utf-8", "surrogateescape"   # undecodable bytes -> U+DC80..U+DCFF, reversibly
DECODE_ERRORS = ("replace", "strict")            # data.decode_errors
_ESCAPED = re.compile("[\udc80-\udcff]")


class CorpusError(UserError):
    """A data file that cannot be read as what it is meant to hold; the message names the file
    (and the line, for line-based formats)."""


class MissingField(CorpusError, UnknownName):
    """A record without the field a reader needs; the message names the file, line and fields."""


def check_data_file(path: str, *, text: bool = True, field: str = "") -> None:
    """Refuse, in one line naming ``path`` (and the setting ``field`` that gave it), a directory,
    an empty file, and (``text``) a file whose first bytes hold a NUL: an archive, an image or a
    checkpoint given as text."""
    given = f" ({field})" if field else ""
    if os.path.isdir(path):
        raise CorpusError(f"{path} is a directory; a file is expected here{given}")
    if os.path.getsize(path) == 0:
        raise CorpusError(f"data file is empty: {path}{given}")
    if text and not path.endswith((".gz", ".zst")):
        with open(path, "rb") as f:
            if b"\0" in f.read(SNIFF_BYTES):
                raise CorpusError(f"{path} is a binary file, not text (it holds NUL bytes)"
                                  f"{given}")


@contextlib.contextmanager
def open_data_file(path: str, field: str = "config.data.path"):
    """``path`` opened as text (gunzipped when it ends in .gz), checked by ``check_data_file``;
    a file found truncated or corrupt while it is read -> ``CorpusError`` naming it."""
    check_data_file(path, field=field)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding=ENCODING, errors=ERRORS) as f:
            yield f
    except (EOFError, OSError, zlib.error) as e:    # a cut .gz, a disk error
        raise CorpusError(f"{path}: truncated or corrupt ({type(e).__name__}: {e})") from None


def jsonl_records(lines, where: str):
    """(line number, record) of every non-blank line of ``lines`` (a text stream of ``where``);
    a line that is not a JSON object -> ``CorpusError`` naming ``where:line``."""
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.strip())   # a column in the line, not in a line after it
        except json.JSONDecodeError as e:
            raise CorpusError(f"{where}:{line_no}: not a JSON record ({e.msg} at column "
                              f"{e.colno})") from None
        if not isinstance(record, dict):
            raise CorpusError(f"{where}:{line_no}: a JSON {type(record).__name__}, not a record "
                              f"({{\"field\": value, ...}})")
        yield line_no, record


def record_field(record: dict, key: str, where: str, hint: str = "") -> str:
    """The text of ``record[key]``; a missing field or one that is not a string -> one line
    naming ``where`` (``file:line``), the field and ``hint`` (the setting that names the field)."""
    if key not in record:
        raise MissingField(f"{where}: no field {key!r} (fields: {sorted(record)})"
                          f"{'; ' + hint if hint else ''}")
    value = record[key]
    if not isinstance(value, str):
        raise CorpusError(f"{where}: field {key!r} is a {type(value).__name__} ({value!r:.40}), "
                          f"not text")
    return value


def utf8_bytes(text: str) -> int:
    """How many bytes ``text`` had on disk: its UTF-8 length, a kept undecodable byte (a lone
    surrogate) counting as the one byte it was (the denominator of bits per byte)."""
    return len(text.encode(ENCODING, ERRORS))


#: token streams' bytes are counted on their first BYTES_SAMPLE tokens (a few seconds of
#: decoding), a longer one scaled by its length: bits per byte needs only the bytes per token
BYTES_SAMPLE, BYTES_CHUNK = 1 << 24, 1 << 20


def decoded_bytes(stream, tok, eos_id: int | None) -> int:
    """The UTF-8 bytes of the text a token stream (``len``, ``read(start, length)``) decodes to,
    without the EOS between documents (as the text kinds' ``val_bytes``): the denominator of
    bits per byte. Decoded a chunk at a time, each cut after an EOS so that no character is split
    between two chunks."""
    import numpy as np
    total, carry, counted = 0, np.zeros((0,), np.int64), min(len(stream), BYTES_SAMPLE)
    for start in range(0, counted, BYTES_CHUNK):
        ids = np.concatenate([carry, stream.read(start, min(BYTES_CHUNK, counted - start))])
        ends = np.flatnonzero(ids == eos_id) if eos_id is not None else ()
        cut = len(ids) if start + BYTES_CHUNK >= counted or not len(ends) else int(ends[-1]) + 1
        ids, carry = ids[:cut], ids[cut:]
        total += utf8_bytes(tok.decode(ids[ids != eos_id].tolist()))
    return round(total * len(stream) / counted) if counted else 0


def expand_paths(path) -> list[str]:
    """A path, a glob, or a list of either -> the sorted existing files (error if none)."""
    patterns = [path] if isinstance(path, str) else list(path)
    files = []
    for p in patterns:
        if not isinstance(p, str) or not p:
            raise FileNotFoundError(f"config.data.path is {p!r}: give a file, a glob or "
                                    f"'{STDLIB}'")
        p = os.path.expanduser(p)
        matched = sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
        missing = [m for m in matched if not os.path.exists(m)]
        if missing:
            raise FileNotFoundError(f"data file not found: {missing[0]} (config.data.path)")
        files += matched
    if not files:
        raise FileNotFoundError(f"no data files match {path!r} (config.data.path)")
    return files


def stdlib_source_files() -> list[str]:
    """Sorted .py files of the standard library this Python ships: real code, always present."""
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        # site-packages holds installed third-party code, not the standard library.
        dirnames[:] = sorted(d for d in dirnames if d not in ("site-packages", "__pycache__"))
        files += [os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py")]
    return files


def read_corpus(path, max_bytes: int = 0) -> str:
    """The text of ``path`` (a file, a glob or list of files joined in order, or ``"stdlib"``),
    cut to ``max_bytes`` characters when that is > 0."""
    files = stdlib_source_files() if path == STDLIB else expand_paths(path)
    if os.path.isdir(files[0]):
        raise FileNotFoundError(f"config.data.path {path!r} is a directory; give a file or a glob")
    parts, size = [], 0
    for f in files:
        # the standard library's files are Python's own, not a user's: not checked
        opened = open(f, encoding=ENCODING, errors=ERRORS) if path == STDLIB else open_data_file(f)
        with opened as fh:
            parts.append(fh.read())
        size += len(parts[-1])
        if max_bytes and size >= max_bytes:
            break
    text = "".join(parts)
    if max_bytes:
        text = text[:max_bytes]
    if not text.strip():
        raise UserError(f"data file is empty: {path} (config.data.path)")
    return text


def read_jsonl(path, text_key: str = "text", max_docs: int = 0) -> list[str]:
    """The ``text_key`` field of every record of the .jsonl / .jsonl.gz files (in order)."""
    docs = []
    for file in expand_paths(path):
        with open_data_file(file) as f:
            for line_no, record in jsonl_records(f, file):
                docs.append(record_field(record, text_key, f"{file}:{line_no}",
                                         "set data.text_key"))
                if max_docs and len(docs) >= max_docs:
                    return docs
    return docs


def read_text_files(path) -> list[str]:
    """Each matched file is one document."""
    docs = []
    for file in expand_paths(path):
        check_data_file(file, field="config.data.path")
        with open(file, encoding=ENCODING, errors=ERRORS, newline="") as f:
            docs.append(f.read())
    return docs


def split_on_separator(text: str, separator: str) -> list[str]:
    """Non-blank documents of ``text`` separated by ``separator`` (e.g. "\\n" or "\\n\\n")."""
    return [d for d in text.split(separator) if d.strip()]


def read_tfds_text(data_config) -> str:
    """Every split of a prepared TFDS text data set, in order (``data.tfds_name``): TFDS
    tiny_shakespeare's 90/5/5 train/validation/test then splits 90/10 exactly as the file does."""
    from pretrainx.data import tfds_text  # lazy: tensorflow_datasets is slow to import
    return tfds_text.load_text(data_config.tfds_name, data_config.tfds_data_dir or None,
                               split="train+validation+test",
                               text_key=data_config.tfds_text_key)


def decode_policy(docs: list[str], *, keep_bytes: bool, policy: str, where) -> list[str]:
    """``docs`` as the tokenizer should see them: undecodable bytes kept for a byte tokenizer
    (``keep_bytes``), else replaced by U+FFFD with a warning that counts them (``policy``
    "replace") or refused with a one-line error ("strict")."""
    if policy not in DECODE_ERRORS:
        raise UserError(f"data.decode_errors must be one of {DECODE_ERRORS}, got {policy!r}")
    if keep_bytes:
        return docs
    count = sum(len(_ESCAPED.findall(d)) for d in docs)
    if not count:
        return docs
    if policy == "strict":
        raise UserError(f"{count} bytes of {where!r} are not UTF-8: use the byte tokenizer "
                        f"(data.tokenizer='byte'), or data.decode_errors='replace'")
    log.warning("%d bytes of %r are not UTF-8: replaced by U+FFFD (data.tokenizer='byte' keeps "
                "them; data.decode_errors='strict' refuses such data)", count, where)
    return [_ESCAPED.sub("\ufffd", d) for d in docs]
