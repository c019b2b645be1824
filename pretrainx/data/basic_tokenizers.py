"""The tokenizer interface (``vocab_size``, ``encode``, ``decode``, ``save``) and the two
tokenizers that need no library: characters and UTF-8 bytes.

Either may carry special tokens (``[MASK]``, ``</s>``, T5's sentinels, ...: see
``special_tokens.py``) after its own ids: a char vocabulary of 65 characters with ``[MASK]`` added
has ``[MASK]`` = 65. ``encode`` maps a special token's text in the input (``"<extra_id_0>"``) to
its id, as the trained vocabularies do; ``add_special_tokens`` returns the tokenizer extended.

Trained subword vocabularies live in ``subword.py``; ``tokenizer.py`` is the one factory that
makes or loads any of them from a config string.
"""
from __future__ import annotations

import json
import os
import re
from typing import Protocol, Sequence

from pretrainx.errors import UnknownName, UserError

FILENAME = "tokenizer.json"


class Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...
    def save(self, directory: str) -> str: ...


class _WithSpecials:
    """Special tokens after a base vocabulary of ``base_size`` ids."""

    def _init_specials(self, base_size: int, specials: Sequence[str]):
        self.base_size = base_size
        self.specials = list(specials)
        self.vocab_size = base_size + len(self.specials)
        self._special_ids = {s: base_size + i for i, s in enumerate(self.specials)}
        # longest first, so that no special token is split by a shorter one it contains
        self._pattern = (re.compile("(" + "|".join(re.escape(s) for s in sorted(
            self.specials, key=len, reverse=True)) + ")") if self.specials else None)

    def has_token(self, name: str) -> bool:
        return name in self._special_ids

    def token_id(self, name: str) -> int:
        """The id of a special token by its text, e.g. ``token_id(special_tokens.MASK)``."""
        if name not in self._special_ids:
            raise UnknownName(f"token {name!r} is not in this {type(self).__name__} (special tokens: "
                              f"{self.specials[:8]}{' ...' if len(self.specials) > 8 else ''})")
        return self._special_ids[name]

    def encode(self, text: str) -> list[int]:
        if self._pattern is None:
            return self._encode_plain(text)
        ids = []
        for i, part in enumerate(self._pattern.split(text)):
            if i % 2:                       # the separators re.split keeps: special tokens
                ids.append(self._special_ids[part])
            elif part:
                ids.extend(self._encode_plain(part))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        out, plain = [], []
        for i in ids:
            i = int(i)
            if i >= self.base_size:
                out.append(self._decode_plain(plain))
                plain = []
                out.append(self.specials[i - self.base_size])
            else:
                plain.append(i)
        out.append(self._decode_plain(plain))
        return "".join(out)

    def token_strings(self) -> list[str]:
        """The text of every id, in id order (for vocabulary tables: word starts, specials)."""
        return [self._decode_plain([i]) for i in range(self.base_size)] + self.specials


class CharTokenizer(_WithSpecials):
    """One id per distinct character of the training text, in sorted order (as nanoGPT's
    prepare.py), then the special tokens, if any."""

    def __init__(self, chars: Sequence[str], specials: Sequence[str] = ()):
        self.chars = list(chars)
        self._index = {c: i for i, c in enumerate(self.chars)}
        self._init_specials(len(self.chars), specials)

    @classmethod
    def fit(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(text)))

    def add_special_tokens(self, names: Sequence[str]) -> "CharTokenizer":
        new = [n for n in names if n not in self._special_ids]
        return CharTokenizer(self.chars, self.specials + new) if new else self

    def _encode_plain(self, text: str) -> list[int]:
        try:
            return [self._index[c] for c in text]
        except KeyError as e:
            raise UserError(f"character {e.args[0]!r} is not in the char vocabulary "
                            f"({len(self.chars)} characters)") from None

    def _decode_plain(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def save(self, directory: str) -> str:
        path = os.path.join(directory, FILENAME)
        with open(path, "w") as f:
            json.dump({"pretrainx_kind": "char", "chars": self.chars, "specials": self.specials}, f)
        return path


class ByteTokenizer(_WithSpecials):
    """UTF-8 bytes as ids 0..255 (needs no training, round-trips any text), then the special
    tokens, if any."""

    def __init__(self, specials: Sequence[str] = ()):
        self._init_specials(256, specials)

    def add_special_tokens(self, names: Sequence[str]) -> "ByteTokenizer":
        new = [n for n in names if n not in self._special_ids]
        return ByteTokenizer(self.specials + new) if new else self

    def _encode_plain(self, text: str) -> list[int]:
        # surrogateescape: bytes the reader could not decode (readers.py) come back as they were
        return list(text.encode("utf-8", errors="surrogateescape"))

    def _decode_plain(self, ids) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def token_strings(self) -> list[str]:
        # a byte past ASCII is part of a multi-byte character: shown as its latin-1 letter
        return [bytes([i]).decode("latin-1") for i in range(256)] + self.specials

    def save(self, directory: str) -> str:
        path = os.path.join(directory, FILENAME)
        with open(path, "w") as f:
            json.dump({"pretrainx_kind": "byte", "specials": self.specials}, f)
        return path
