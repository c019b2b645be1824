"""Tokenizers behind one small interface: ``vocab_size``, ``encode``, ``decode``, ``save``.

Char and byte tokenizers live here; trained subword vocabularies (BPE, WordPiece, Unigram, via the
``tokenizers`` library) live in ``subword.py`` and load through :func:`load`.
"""
from __future__ import annotations

import json
import os
from typing import Protocol, Sequence

FILENAME = "tokenizer.json"


class Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...
    def save(self, directory: str) -> str: ...


class CharTokenizer:
    """One id per distinct character of the training text, in sorted order (as nanoGPT's prepare.py)."""

    def __init__(self, chars: Sequence[str]):
        self.chars = list(chars)
        self.vocab_size = len(self.chars)
        self._index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def fit(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(text)))

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[c] for c in text]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the char vocabulary "
                             f"({self.vocab_size} characters)") from None

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def save(self, directory: str) -> str:
        path = os.path.join(directory, FILENAME)
        with open(path, "w") as f:
            json.dump({"pretrainx_kind": "char", "chars": self.chars}, f)
        return path


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255: needs no training and round-trips any text."""
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def save(self, directory: str) -> str:
        path = os.path.join(directory, FILENAME)
        with open(path, "w") as f:
            json.dump({"pretrainx_kind": "byte"}, f)
        return path


def from_spec(spec: str, text: str | None = None) -> Tokenizer:
    """``"char"`` (fit on ``text``), ``"byte"``, or a path to a saved tokenizer (dir or file)."""
    if spec == "char":
        if text is None:
            raise ValueError("a char tokenizer is fit on the training text, and none was given")
        return CharTokenizer.fit(text)
    if spec == "byte":
        return ByteTokenizer()
    if spec.split(":")[0] in ("bpe", "wordpiece", "unigram"):   # "bpe:8000": train on the text now
        from pretrainx.data import subword
        return subword.resolve(spec, [text] if text is not None else [])
    return load(spec)


def load(path: str) -> Tokenizer:
    """Load a tokenizer saved by any ``save`` above or by :mod:`pretrainx.data.subword`."""
    file = os.path.join(path, FILENAME) if os.path.isdir(path) else path
    if not os.path.exists(file):
        raise FileNotFoundError(f"no tokenizer at {path!r} (expected a directory holding "
                                f"{FILENAME} or the file itself)")
    with open(file) as f:
        blob = json.load(f)
    kind = blob.get("pretrainx_kind")
    if kind == "char":
        return CharTokenizer(blob["chars"])
    if kind == "byte":
        return ByteTokenizer()
    from pretrainx.data import subword  # HF `tokenizers` JSON (BPE / WordPiece / Unigram)
    return subword.SubwordTokenizer.load(file)
