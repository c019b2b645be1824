"""The tokenizer interface (``vocab_size``, ``encode``, ``decode``, ``save``) and the two
tokenizers that need no library: characters and UTF-8 bytes.

Trained subword vocabularies live in ``subword.py``; ``tokenizer.py`` is the one factory that
makes or loads any of them from a config string.
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
