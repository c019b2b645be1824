"""The one tokenizer factory: a config string (or a saved file) -> a tokenizer.

``data.tokenizer`` takes
  * ``"char"``: one id per distinct character, fit on *all* the text (train and validation, as
    nanoGPT's prepare.py, so every validation character has an id);
  * ``"byte"``: UTF-8 bytes, nothing to fit;
  * ``"bpe:8000"`` / ``"wordpiece:8000"`` / ``"unigram:8000"``: that vocabulary, trained now on
    the *training* text only (about a second per MB);
  * a path: a directory holding ``tokenizer.json`` or the file itself, as written by ``save``.

Every tokenizer has ``vocab_size``, ``encode``, ``decode`` and ``save(dir)``; a resumed run loads
the ``tokenizer.json`` its first start saved instead of fitting or training again.
:func:`with_special_tokens` adds the special tokens an objective needs (``[MASK]``, sentinels)
after the ids a vocabulary has, so the ids of ordinary text do not move.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

from pretrainx.data import subword
from pretrainx.data.readers import check_data_file
from pretrainx.data.basic_tokenizers import FILENAME, ByteTokenizer, CharTokenizer, Tokenizer
from pretrainx.errors import UserError

__all__ = ["FILENAME", "Tokenizer", "CharTokenizer", "ByteTokenizer", "from_spec", "load",
           "with_special_tokens"]


def _texts(text: str | Sequence[str] | None) -> list[str] | None:
    if text is None:
        return None
    return [text] if isinstance(text, str) else list(text)


def from_spec(spec: str, train_text: str | Sequence[str] | None = None,
              all_text: str | Sequence[str] | None = None) -> Tokenizer:
    """The tokenizer ``spec`` names (see the module docstring).

    ``train_text``: the training text (a string or documents), for trained vocabularies and, when
    ``all_text`` is not given, for the char vocabulary; ``all_text``: train and validation text.
    """
    kind, _, size = spec.partition(":")
    if spec == "char":
        texts = _texts(all_text if all_text is not None else train_text)
        if texts is None:
            raise UserError("a char tokenizer is fit on the text, and none was given")
        return CharTokenizer.fit("".join(texts))
    if spec == "byte":
        return ByteTokenizer()
    if kind in subword.KINDS:
        if not size.isdigit():
            raise UserError(f"tokenizer {spec!r}: give the vocabulary size, e.g. '{kind}:8000'")
        texts = _texts(train_text)
        if not texts:
            raise UserError(f"tokenizer {spec!r} is trained on the training text, and none was given")
        return subword.train_from_texts(texts, kind, int(size))
    if not os.path.exists(os.path.expanduser(spec)):
        raise FileNotFoundError(f"config.data.tokenizer {spec!r} is neither a kind ('char', "
                                f"'byte', '<kind>:<size>' with kind in {list(subword.KINDS)}) "
                                f"nor a saved tokenizer's path")
    return load(os.path.expanduser(spec))


def load(path: str) -> Tokenizer:
    """A tokenizer saved by any ``save`` (a directory holding ``tokenizer.json``, or the file)."""
    file = os.path.join(path, FILENAME) if os.path.isdir(path) else path
    if not os.path.exists(file):
        raise FileNotFoundError(f"no tokenizer at {path!r} (expected a directory holding "
                                f"{FILENAME} or the file itself)")
    blob = _tokenizer_json(file)
    kind = blob.get("pretrainx_kind")
    if kind in ("char", "byte"):
        try:
            if kind == "char":
                return CharTokenizer(blob["chars"], blob.get("specials", ()))
            return ByteTokenizer(blob.get("specials", ()))
        except (KeyError, TypeError) as e:
            raise UserError(f"{file}: a {kind} tokenizer without a valid {e}") from None
    if "model" not in blob:
        raise UserError(f"{file} is JSON but no tokenizer (no \"pretrainx_kind\" nor a "
                        f"`tokenizers` \"model\"; keys: {sorted(blob)[:8]})")
    try:   # HF `tokenizers` JSON (BPE / WordPiece / Unigram)
        return subword.SubwordTokenizer.load(file)
    except ImportError:
        raise
    except Exception as e:   # `tokenizers` reports a bad file as a plain Exception
        raise UserError(f"{file} is not a tokenizer the `tokenizers` library reads "
                        f"({str(e).splitlines()[0][:160]})") from None


def _tokenizer_json(file: str) -> dict:
    """The JSON object of a tokenizer file; anything else -> one line naming the file."""
    check_data_file(file)
    try:
        with open(file, encoding="utf-8") as f:
            blob = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{file} is not a tokenizer JSON file ({e})") from None
    if not isinstance(blob, dict):
        raise UserError(f"{file} is not a tokenizer JSON file (a JSON {type(blob).__name__})")
    return blob


def with_special_tokens(tok: Tokenizer, names: Sequence[str]) -> Tokenizer:
    """``tok`` holding every token of ``names``: those it lacks are appended after its ids, in
    the order given (a trained vocabulary already holds ``special_tokens.ALL``; a char or byte
    vocabulary gets them after its characters / bytes). Idempotent."""
    names = list(names)
    if not names:
        return tok
    add = getattr(tok, "add_special_tokens", None)
    if add is None:
        raise UserError(f"{type(tok).__name__} cannot take the special tokens {names[:4]}")
    return add(names)
