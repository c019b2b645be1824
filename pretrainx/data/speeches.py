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
"""
from __future__ import annotations

import collections

import numpy as np

from pretrainx.data import readers
from pretrainx.data import special_tokens as st
from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.data.base import Dataset, register
from pretrainx.data.sources import ArraySource


def parse_speeches(text: str) -> list[tuple[str, str]]:
    """(speaker, speech text) for every block "NAME:\\n lines..." of the play text."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.strip("\n").split("\n")
        if len(lines) >= 2 and lines[0].endswith(":") and lines[0][:-1].strip():
            out.append((lines[0][:-1].strip(), "\n".join(lines[1:])))
    return out


def speaker_task(text: str, top_speakers: int = 10, val_fraction: float = 0.2,
                 split_seed: int = 0):
    """(train, val, names): lists of (speech, label) and the speakers by label."""
    speeches = parse_speeches(text)
    counts = collections.Counter(s for s, _ in speeches)
    names = [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
             [:top_speakers]]
    label = {n: i for i, n in enumerate(names)}
    kept = [(speech, label[s]) for s, speech in speeches if s in label]
    order = np.random.default_rng(split_seed).permutation(len(kept))
    n_val = int(round(len(kept) * val_fraction))
    val = [kept[i] for i in sorted(order[:n_val])]
    train = [kept[i] for i in sorted(order[n_val:])]
    return train, val, names


def encode_rows(tok, examples, seq_len: int):
    cls, pad = tok.token_id(st.CLS), tok.token_id(st.PAD)
    tokens = np.full((len(examples), seq_len), pad, np.int32)
    for i, (speech, _) in enumerate(examples):
        ids = [cls] + tok.encode(speech)[:seq_len - 1]
        tokens[i, :len(ids)] = ids
    return {"tokens": tokens, "input_mask": (tokens != pad).astype(np.int32),
            "label": np.asarray([y for _, y in examples], np.int32)}


@register("speeches")
def build_speeches(data_config, *, batch_size, eval_batch_size, seq_len, seed, fields=None,
                   tokenizer=None, special_tokens=()) -> Dataset:
    text = readers.read_corpus(data_config.path)
    train, val, names = speaker_task(text, int(data_config.get("top_speakers", 10)),
                                     float(data_config.get("val_fraction", 0.2)),
                                     int(data_config.get("split_seed", 0)))
    if tokenizer is None:
        tokenizer = tokenizer_lib.from_spec(data_config.get("tokenizer", "char"), [text])
    tokenizer = tokenizer_lib.with_special_tokens(tokenizer, special_tokens or (st.PAD, st.CLS))
    balance = lambda ex: np.bincount([y for _, y in ex], minlength=len(names)).tolist()
    info = {"speakers": names, "train_speeches": len(train), "val_speeches": len(val),
            "train_balance": balance(train), "val_balance": balance(val)}
    return Dataset(train=ArraySource(encode_rows(tokenizer, train, seq_len), batch_size, seed),
                   val=ArraySource(encode_rows(tokenizer, val, seq_len), eval_batch_size, seed,
                                   shuffle=False, drop_remainder=False),
                   tokenizer=tokenizer, info=info)
