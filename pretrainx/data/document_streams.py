"""Documents streamed from files too big for memory: text, JSONL (plain, .gz, .zst), Parquet, or
a prepared TFDS text set (``tfds:NAME[/CONFIG][:SPLIT]``, data/tfds_text.py: one record each).

``iter_documents(files, text_key, separator)`` yields the documents of every file in order, one
at a time, holding at most a chunk of a file and one document in memory (``readers.py`` reads a
whole corpus at once, for the small ``text`` / ``jsonl`` kinds). What a file holds is read from its
name: ``*.parquet`` (column ``text_key``), ``*.jsonl`` / ``*.json`` (field ``text_key`` of each
line's record), anything else is text cut into documents at ``separator`` ("" keeps each file one
document). ``.gz`` / ``.zst`` are decompressed as they are read.

Bad input (a truncated archive, a line that is not JSON or lacks the field, a missing column)
raises ``CorpusError``, whose one line names the file (and the line).
"""
from __future__ import annotations

import glob
import gzip
import io
import os
import zlib
from typing import Iterator

from pretrainx.data import readers, tfds_text
from pretrainx.data.readers import CorpusError

#: text bytes read at a time from a text file cut at a separator
CHUNK_CHARS = 1 << 20
#: Parquet rows read at a time
PARQUET_BATCH_ROWS = 1024


def expand_sources(sources, tfds_data_dir: str | None = None) -> list:
    """Files, folders (every file below, sorted) and globs -> the sorted list of files, each
    checked before anything is read (``readers.check_data_file``: no empty file, no binary file
    where text is expected); a ``tfds:`` source -> a ``tfds_text.TextRecords`` in its place."""
    files = []
    for source in [sources] if isinstance(sources, str) else list(sources):
        if source.startswith(tfds_text.PREFIX):
            files.append(tfds_text.TextRecords.parse(source, tfds_data_dir))
            continue
        source = os.path.expanduser(source)
        if os.path.isdir(source):
            found = sorted(os.path.join(d, f) for d, _, names in os.walk(source) for f in names)
        elif any(c in source for c in "*?["):
            found = sorted(glob.glob(source))
        elif os.path.exists(source):
            found = [source]
        else:
            raise FileNotFoundError(f"corpus file not found: {source}")
        if not found:
            raise FileNotFoundError(f"no corpus files in {source}")
        files += found
    for path in files:
        if isinstance(path, str):
            readers.check_data_file(path, text=_format(path) != "parquet")
    return files


def describe(source, text_key: str) -> dict:
    """A source as the manifest records it: a file's path and size, a TFDS split's records."""
    if isinstance(source, tfds_text.TextRecords):
        return source.describe(text_key)
    return {"path": os.path.abspath(source), "bytes": os.path.getsize(source)}


def _compression(path: str) -> str:
    return next((c for c in (".gz", ".zst") if path.endswith(c)), "")


def _format(path: str) -> str:
    stem = path[:-len(_compression(path))] if _compression(path) else path
    if stem.endswith(".parquet"):
        return "parquet"
    return "jsonl" if stem.endswith((".jsonl", ".json")) else "text"


def _open_text(path: str) -> io.TextIOBase:
    compression = _compression(path)
    if compression == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    raw = open(path, "rb")
    if compression == ".zst":
        raw = io.BufferedReader(_ZstdFrames(raw))
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


class _ZstdFrames(io.RawIOBase):
    """The decompressed bytes of every zstd frame of a file. zstandard's own stream reader ends
    quietly where a truncated file ends; this one raises EOFError when the last frame is cut."""

    def __init__(self, raw):
        import zstandard   # lazy: the `corpus` extra
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._raw, self._frame = raw, None
        self._pending, self._offset = b"", 0      # decompressed, not yet read from self._offset

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._offset == len(self._pending):
            self._pending, self._offset = b"", 0
            compressed = self._raw.read(1 << 18)
            if not compressed:
                if self._frame is not None and not self._frame.eof:
                    raise EOFError("the zstd stream ends inside a frame")
                return 0
            while compressed:
                if self._frame is None or self._frame.eof:
                    self._frame = self._new()
                self._pending += self._frame.decompress(compressed)
                compressed = self._frame.unused_data if self._frame.eof else b""
        n = min(len(buffer), len(self._pending) - self._offset)
        buffer[:n] = memoryview(self._pending)[self._offset:self._offset + n]
        self._offset += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _read_errors() -> tuple:
    errors = (EOFError, OSError, zlib.error, UnicodeDecodeError)
    try:
        import zstandard
        errors += (zstandard.ZstdError,)
    except ImportError:
        pass
    return errors


def _text_documents(path: str, separator: str) -> Iterator[str]:
    with _open_text(path) as f:
        if not separator:
            text = f.read()
            if text.strip():
                yield text
            return
        tail = ""
        while chunk := f.read(CHUNK_CHARS):
            pieces = (tail + chunk).split(separator)
            tail = pieces.pop()
            yield from (p for p in pieces if p.strip())
        if tail.strip():
            yield tail


def _jsonl_documents(path: str, text_key: str) -> Iterator[str]:
    with _open_text(path) as f:
        for line_no, record in readers.jsonl_records(f, path):
            yield readers.record_field(record, text_key, f"{path}:{line_no}", "pass --text-key")


def _parquet_documents(path: str, text_key: str) -> Iterator[str]:
    import pyarrow.parquet as pq   # lazy: the `corpus` extra
    table = pq.ParquetFile(path)
    if text_key not in table.schema_arrow.names:
        raise CorpusError(f"{path}: no column {text_key!r} (columns: {table.schema_arrow.names}); "
                          f"pass --text-key")
    column = table.schema_arrow.field(text_key).type
    if str(column) not in ("string", "large_string", "string_view"):
        raise CorpusError(f"{path}: column {text_key!r} holds {column}, not text; pass --text-key "
                          f"to name the text column")
    for batch in table.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[text_key]):
        yield from (str(t) for t in batch.column(0).to_pylist() if t is not None)


def file_documents(path: str, text_key: str = "text", separator: str = "\n\n") -> Iterator[str]:
    """The documents of one file (module docstring); a file that cannot be read -> CorpusError."""
    if isinstance(path, tfds_text.TextRecords):
        yield from path.documents(text_key)
        return
    kind = _format(path)
    if kind == "parquet" and _compression(path):
        raise CorpusError(f"{path}: Parquet compresses its own columns; give the .parquet file")
    documents = {"parquet": lambda: _parquet_documents(path, text_key),
                 "jsonl": lambda: _jsonl_documents(path, text_key),
                 "text": lambda: _text_documents(path, separator)}[kind]()
    try:
        yield from documents
    except _read_errors() as e:
        what = "truncated or corrupt" if _compression(path) else "unreadable"
        raise CorpusError(f"{path}: {what} ({type(e).__name__}: {e})") from None
    except Exception as e:   # pyarrow's errors: a file that is not Parquet
        if type(e).__module__.startswith("pyarrow"):
            raise CorpusError(f"{path}: not a readable Parquet file ({e})") from None
        raise


def iter_documents(files: list[str], text_key: str = "text",
                   separator: str = "\n\n") -> Iterator[str]:
    """Every document of ``files`` in order; none at all (blank files) -> ``CorpusError``."""
    count = 0
    for path in files:
        for document in file_documents(path, text_key, separator):
            count += 1
            yield document
    if not count:
        raise CorpusError(f"no documents in {', '.join(map(str, files[:3]))}"
                          f"{f' and {len(files) - 3} more files' if len(files) > 3 else ''}: "
                          f"only whitespace")
