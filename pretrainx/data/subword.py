"""Trained subword vocabularies (byte-level BPE, WordPiece, Unigram) with HF ``tokenizers``.

The three kinds, and what "round trip" means for each:

* ``bpe``: GPT-2 style byte-level BPE. No normaliser, ``add_prefix_space=False`` and the ByteLevel
  decoder, so ``decode(encode(x)) == x`` exactly for any text (every byte has a token).
* ``wordpiece``: BERT style (``##`` continuation pieces), cased, NFC normalised. The pre-tokenizer
  drops whitespace, so decoding gives the words and punctuation back with single spaces between.
* ``unigram``: SentencePiece style (``▁`` marks a space), NFC normalised. Round-trips up to the
  normalisation and runs of spaces.

Every vocabulary starts with :data:`special_tokens.ALL` (PAD=0, ...), see special_tokens.py.
Saved files are plain HF ``tokenizer.json``: ``tokenizer.load`` hands them to
:meth:`SubwordTokenizer.load`, and ``tokenizers.Tokenizer.from_file`` reads them too. Config
strings (``"bpe:8000"``) become tokenizers in ``tokenizer.from_spec``, the one factory.
"""
from __future__ import annotations

import gzip
import os
from typing import Iterable, Iterator, Sequence

import numpy as np

from pretrainx.data import readers
from pretrainx.data import special_tokens as st
from pretrainx.data.basic_tokenizers import FILENAME
from pretrainx.errors import UnknownName, UserError

KINDS = ("bpe", "wordpiece", "unigram")


class SubwordTokenizer:
    """A ``tokenizers.Tokenizer`` behind the project's tokenizer interface."""

    def __init__(self, tokenizer):
        self.hf = tokenizer   # the underlying tokenizers.Tokenizer, for anything not wrapped here

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size(with_added_tokens=True)

    @property
    def kind(self) -> str:
        model = type(self.hf.model).__name__.lower()     # "bpe" | "wordpiece" | "unigram"
        return model

    def encode(self, text: str) -> list[int]:
        # No post-processor is attached, so nothing (BOS/CLS...) is added behind the caller's back.
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Many texts at once, encoded in parallel by the Rust library."""
        return [e.ids for e in self.hf.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        # Special tokens are kept by default: text that literally contains "</s>" encodes to EOS and
        # must decode back to "</s>" for the round trip to be exact.
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def token_id(self, name: str) -> int:
        """The id of a token by its string, e.g. ``token_id(special_tokens.MASK)``."""
        i = self.hf.token_to_id(name)
        if i is None:
            raise UnknownName(f"token {name!r} is not in this {self.kind} vocabulary "
                              f"({self.vocab_size} tokens)")
        return i

    def has_token(self, name: str) -> bool:
        return self.hf.token_to_id(name) is not None

    def add_special_tokens(self, names: Sequence[str]) -> "SubwordTokenizer":
        """This tokenizer with the tokens of ``names`` it lacks appended after its ids."""
        missing = [n for n in names if not self.has_token(n)]
        if missing:
            self.hf.add_special_tokens(missing)
        return self

    def token_strings(self) -> list[str]:
        """The text of every id, in id order (WordPiece's "##" continuation marks included)."""
        return [self.hf.id_to_token(i) or "" for i in range(self.vocab_size)]

    def save(self, directory: str) -> str:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, FILENAME)
        self.hf.save(path)
        return path

    @classmethod
    def load(cls, path: str) -> "SubwordTokenizer":
        """From a ``tokenizer.json`` file or a directory holding one."""
        from tokenizers import Tokenizer
        file = os.path.join(path, FILENAME) if os.path.isdir(path) else path
        return cls(Tokenizer.from_file(file))

    def __repr__(self) -> str:
        return f"SubwordTokenizer(kind={self.kind!r}, vocab_size={self.vocab_size})"


def _new_tokenizer(kind: str, vocab_size: int, special: list[str], show_progress: bool):
    """An untrained tokenizer of ``kind`` and its trainer."""
    given = len(special) + (256 if kind == "bpe" else 0)
    if vocab_size <= given:   # the trainer would silently return the given tokens alone
        raise UserError(f"a {kind} vocabulary of {vocab_size} tokens has no room to learn: "
                        f"{given} are given (special tokens{' and bytes' if kind == 'bpe' else ''})"
                        f"; ask for more than {given}")
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    if kind == "bpe":
        # byte-level: the base alphabet is all 256 bytes, so there is never an unknown token
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=show_progress)
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=st.UNK))
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special,
                                            continuing_subword_prefix="##",
                                            show_progress=show_progress)
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=special,
                                          unk_token=st.UNK, show_progress=show_progress)
    else:
        raise UserError(f"unknown tokenizer kind {kind!r} (known: {', '.join(KINDS)})")
    return tok, trainer


def train_tokenizer(files: Sequence[str], kind: str = "bpe", vocab_size: int = 8000,
                    special_tokens: Sequence[str] = tuple(st.ALL),
                    show_progress: bool = False) -> SubwordTokenizer:
    """Train a ``kind`` vocabulary of ``vocab_size`` tokens (specials included) on text files.

    ``.gz`` files are read through gzip; every file is read as UTF-8 text.
    """
    special = list(special_tokens)
    for f in files:
        if not os.path.exists(f):
            raise FileNotFoundError(f"corpus file not found: {f}")
        readers.check_data_file(f)
    if not any(line.strip() for line in iter_lines(files)):   # stops at the first text
        raise readers.CorpusError(f"the corpus {', '.join(files)} holds only whitespace: "
                                  f"nothing to learn a vocabulary from")
    tok, trainer = _new_tokenizer(kind, vocab_size, special, show_progress)
    if any(f.endswith(".gz") for f in files):
        tok.train_from_iterator(iter_lines(files), trainer=trainer)
    else:
        try:
            tok.train(list(files), trainer=trainer)
        except Exception as e:   # `tokenizers` reports an unreadable file as a plain Exception
            raise readers.CorpusError(f"{', '.join(files)}: the `tokenizers` library cannot "
                                      f"read the corpus ({e})") from None
    return _learned(SubwordTokenizer(tok), kind, special, ", ".join(files))


def _learned(tok: SubwordTokenizer, kind: str, special: list[str], where: str):
    """``tok``, unless its vocabulary holds nothing learned from the corpus beyond the special
    tokens (and byte-level BPE's 256 base bytes): a useless vocabulary is never saved."""
    given = len(special) + (256 if kind == "bpe" else 0)
    if tok.vocab_size <= given:
        raise readers.CorpusError(f"the {kind} vocabulary trained on {where} has only its "
                                  f"{tok.vocab_size} given tokens (special tokens"
                                  f"{' and bytes' if kind == 'bpe' else ''}): the corpus is too "
                                  f"small, or --vocab-size too small")
    return tok


def train_from_texts(texts: Iterable[str], kind: str = "bpe", vocab_size: int = 8000,
                     special_tokens: Sequence[str] = tuple(st.ALL)) -> SubwordTokenizer:
    """Like :func:`train_tokenizer`, on in-memory texts (e.g. a builder's training documents)."""
    tok, trainer = _new_tokenizer(kind, vocab_size, list(special_tokens), False)
    tok.train_from_iterator(texts, trainer=trainer)
    return SubwordTokenizer(tok)


def _open_text(path: str):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")   # newline="": keep "\r\n" as written


def iter_lines(paths: Sequence[str]) -> Iterator[str]:
    """Lines of the files, newline characters kept, so that joining them gives the text back;
    a file that is not UTF-8 text -> one line naming it."""
    for p in paths:
        try:
            with _open_text(p) as f:
                yield from f
        except UnicodeDecodeError as e:
            raise readers.CorpusError(f"{p}: not UTF-8 text (byte {e.object[e.start:e.end]!r} "
                                      f"at offset {e.start} of a read chunk)") from None


def _batches(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    batch = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def encode_corpus(tokenizer, path_or_lines, batch_lines: int = 10_000,
                  dtype=np.int32, progress: bool = True) -> np.ndarray:
    """Token ids of a whole corpus as one flat array, encoded ``batch_lines`` lines at a time.

    ``path_or_lines``: a file path (``.gz`` ok), a list of paths, or an iterable of text lines.
    Lines are encoded separately (with their newlines), so a token never spans two lines; the
    concatenated ids still decode to the exact text for byte-level BPE. Uses the tokenizer's
    parallel ``encode_batch`` when it has one.
    """
    from tqdm import tqdm
    if isinstance(path_or_lines, str):
        path_or_lines = [path_or_lines]
    is_paths = (isinstance(path_or_lines, (list, tuple)) and path_or_lines
                and all(isinstance(p, str) and os.path.exists(p) for p in path_or_lines))
    lines = iter_lines(path_or_lines) if is_paths else path_or_lines
    # byte totals for the progress bar (unknown for gzip files: their size on disk is compressed)
    total = (sum(os.path.getsize(p) for p in path_or_lines)
             if is_paths and not any(p.endswith(".gz") for p in path_or_lines) else None)
    encode_batch = getattr(tokenizer, "encode_batch", None) or (
        lambda texts: [tokenizer.encode(t) for t in texts])
    chunks = []
    with tqdm(total=total, unit="B", unit_scale=True, desc="tokenize", disable=not progress,
              leave=False) as bar:
        for batch in _batches(lines, batch_lines):
            ids = encode_batch(batch)
            chunks.append(np.fromiter((i for seq in ids for i in seq), dtype=dtype,
                                      count=sum(len(s) for s in ids)))
            bar.update(sum(len(t.encode("utf-8")) for t in batch) if total else len(batch))
    return np.concatenate(chunks) if chunks else np.zeros((0,), dtype)
