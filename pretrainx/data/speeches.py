"""A downstream classification task from the shared data: which of the most frequent speakers of
Tiny Shakespeare speaks a speech (``config.data.kind = "speeches"``).

A speech is one turn: a block of the play text between blank lines whose first line is the
speaker's name and a colon ("ROMEO:"); its text is the block without that line. The speeches of
the ``top_speakers`` (10) speakers with the most speeches are kept, labelled 0..9 by rank, and
split by speech with a fixed generator (``split_seed``, independent of the run's seed), so every
run and the bag-of-words baseline (``experiments/finetune_speakers.py``) see the same split.

Rows: ``tokens`` ([CLS], then the speech's first ``seq_len`` - 1 tokens, then [PAD]s),
``input_mask`` (1 on real tokens) and ``label``. The tokenizer is ``data.tokenizer``: "char" fits
the 65 characters of the whole text (the ids of a char run pretrained on it), or a pretraining
run's workdir / tokenizer.json, so the ids are the pretrained model's; the objective's special
tokens are appended where missing. ``info`` reports the class balance of both splits.

``data.kind = "speeches_text"`` is the pretraining side: the play text with the held-out
speeches of the same split cut out (``text_without_held_out``; ``data.val_fraction_speeches``,
``top_speakers`` and ``split_seed`` name the split), through the ordinary text pipeline.
"""
from __future__ import annotations

import collections

import numpy as np

from pretrainx.data import readers
from pretrainx.data import text as text_lib
from pretrainx.data import special_tokens as st
from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.data.base import Dataset, register
from pretrainx.data.sources import ArraySource


def _blocks(text: str) -> list[str]:
    return text.replace("\r\n", "\n").split("\n\n")


def _speech(block: str):
    """(speaker, text) of a block "NAME:" + lines, else None (a stage direction, a title)."""
    lines = block.strip("\n").split("\n")
    if len(lines) >= 2 and lines[0].endswith(":") and lines[0][:-1].strip():
        return lines[0][:-1].strip(), "\n".join(lines[1:])
    return None


def parse_speeches(text: str) -> list[tuple[str, str]]:
    """(speaker, speech text) for every speech block of the play text."""
    return [sp for sp in map(_speech, _blocks(text)) if sp is not None]


def _split(text: str, top_speakers: int, val_fraction: float, split_seed: int):
    """(blocks, {block index: label} of the training speeches, the same for the held-out
    ones, the speakers by label)."""
    blocks = _blocks(text)
    speeches = {i: sp for i, sp in enumerate(map(_speech, blocks)) if sp is not None}
    counts = collections.Counter(s for s, _ in speeches.values())
    names = [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
             [:top_speakers]]
    label = {n: i for i, n in enumerate(names)}
    kept = [(i, label[s]) for i, (s, _) in speeches.items() if s in label]
    order = np.random.default_rng(split_seed).permutation(len(kept))
    n_val = int(round(len(kept) * val_fraction))
    val = dict(kept[i] for i in sorted(order[:n_val]))
    train = dict(kept[i] for i in sorted(order[n_val:]))
    return blocks, train, val, names


def speaker_task(text: str, top_speakers: int = 10, val_fraction: float = 0.2,
                 split_seed: int = 0):
    """(train, val, names): lists of (speech, label) and the speakers by label."""
    blocks, train, val, names = _split(text, top_speakers, val_fraction, split_seed)
    pick = lambda part: [(_speech(blocks[i])[1], y) for i, y in part.items()]
    return pick(train), pick(val), names


def text_without_held_out(text: str, top_speakers: int = 10, val_fraction: float = 0.2,
                          split_seed: int = 0) -> str:
    """The play text with the task's held-out speeches (name line and text) cut out: what a
    parent run pretrains on, so that no test speech is seen before it is classified."""
    blocks, _, val, _ = _split(text, top_speakers, val_fraction, split_seed)
    return "\n\n".join(b for i, b in enumerate(blocks) if i not in val)


def _pretraining_documents(data_config) -> list[str]:
    return [text_without_held_out(readers.read_corpus(data_config.path),
                                  int(data_config.top_speakers),
                                  float(data_config.val_fraction_speeches),
                                  int(data_config.split_seed))]


#: ``data.kind = "speeches_text"``: the text pipeline over the play without the held-out speeches
register("speeches_text")(text_lib._builder(_pretraining_documents))


def _encode(tok, text: str) -> list[int]:
    """``tok.encode``; a character a parent's char vocabulary never saw is dropped."""
    try:
        return tok.encode(text)
    except ValueError:
        out = []
        for ch in text:
            try:
                out.extend(tok.encode(ch))
            except ValueError:
                pass
        return out


def encode_rows(tok, examples, seq_len: int):
    cls, pad = tok.token_id(st.CLS), tok.token_id(st.PAD)
    tokens = np.full((len(examples), seq_len), pad, np.int32)
    for i, (speech, _) in enumerate(examples):
        ids = [cls] + _encode(tok, speech)[:seq_len - 1]
        tokens[i, :len(ids)] = ids
    return {"tokens": tokens, "input_mask": (tokens != pad).astype(np.int32),
            "label": np.asarray([y for _, y in examples], np.int32)}


@register("speeches")
def build_speeches(data_config, *, batch_size, eval_batch_size, seq_len, seed, fields=None,
                   tokenizer=None, special_tokens=()) -> Dataset:
    text = readers.read_corpus(data_config.path)
    train, val, names = speaker_task(text, int(data_config.top_speakers),
                                     float(data_config.val_fraction),
                                     int(data_config.split_seed))
    if tokenizer is None:
        tokenizer = tokenizer_lib.from_spec(data_config.tokenizer, [text])
    tokenizer = tokenizer_lib.with_special_tokens(tokenizer, special_tokens or (st.PAD, st.CLS))
    balance = lambda ex: np.bincount([y for _, y in ex], minlength=len(names)).tolist()
    info = {"speakers": names, "num_classes": len(names),
            "train_speeches": len(train), "val_speeches": len(val),
            "train_balance": balance(train), "val_balance": balance(val)}
    return Dataset(train=ArraySource(encode_rows(tokenizer, train, seq_len), batch_size, seed),
                   val=ArraySource(encode_rows(tokenizer, val, seq_len), eval_batch_size, seed,
                                   shuffle=False, drop_remainder=False),
                   tokenizer=tokenizer, info=info)
