"""Preference pairs (prompt, chosen, rejected) for the ``reward`` and ``dpo`` objectives: data kind
``"preferences"``.

Records are JSONL (``.jsonl`` or ``.jsonl.gz``, a glob or list of files) in one of two formats
(``data.format``: ``"auto"`` picks by the keys of the first record):

* ``"hh"``: Anthropic HH-RLHF, ``{"chosen": dialogue, "rejected": dialogue}`` with dialogues of
  ``"\\n\\nHuman: ... \\n\\nAssistant: ..."`` turns. The prompt is everything up to and including
  the *last* ``"Assistant:"`` of each dialogue; what follows is the response. The two dialogues
  of a pair share their earlier turns, so the two prompts are normally equal.
* ``"plain"``: ``{"prompt": ..., "chosen": ..., "rejected": ...}`` with the responses alone.

Each side becomes one right-padded row of ``seq_len`` tokens: prompt + response, cut from the
left when too long (the end of a dialogue is what is compared), with ``*_mask`` marking its real
tokens and ``*_response`` its response tokens (the tokens a policy's log-probability sums over,
for DPO). ``data.info["cut_pairs"]`` counts the pairs cut.

The split is by seed: the pairs are shuffled with ``config.seed`` and the last ``val_fraction``
are the held-out (test) pairs. ``dev_fraction`` > 0 sets aside the ``dev_fraction`` before them as
a development split that never trains, so settings can be chosen on it (``eval_split="dev"``)
and the held-out pairs read once (``eval_split="test"``, the default; ``pretrainx eval
--config.data.eval_split=test``). ``min_margin`` > 0 keeps only pairs whose two rule scores (the
``"scores"`` of ``pretrainx pairs``) differ by at least that much, in every split *after*
splitting: the filtered held-out pairs are a subset of the unfiltered ones, so one run is
scored on both (``pretrainx eval --config.data.min_margin=0``). Validation batches cover every held-out pair exactly once: the last batch is topped up
with rows of ``pair_weight`` 0, and batches past the end hold only such rows, so a pooled
accuracy is the accuracy over the held-out pairs whatever ``eval.num_batches`` is.
"""
from __future__ import annotations

import logging

import numpy as np

from pretrainx.data import readers
from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.data.base import Dataset, register, shard_rows
from pretrainx.data.sources import ArraySource
from pretrainx.errors import UserError

log = logging.getLogger(__name__)

ASSISTANT = "Assistant:"
SIDES = ("chosen", "rejected")


def split_dialogue(dialogue: str, where: str = "") -> tuple[str, str]:
    """(prompt up to and including the last "Assistant:", response after it)."""
    cut = dialogue.rfind(ASSISTANT)
    if cut < 0:
        raise readers.CorpusError(f"{where + ': ' if where else ''}an HH-RLHF dialogue without "
                                  f"{ASSISTANT!r}: {dialogue[:80]!r}")
    cut += len(ASSISTANT)
    return dialogue[:cut], dialogue[cut:]


def _plain_pair(record: dict, where: str) -> dict:
    prompt = readers.record_field(record, "prompt", where)
    pair = {"prompt": prompt, "rejected_prompt": prompt,
            **{side: readers.record_field(record, side, where) for side in SIDES}}
    if "scores" in record:      # the rule's scores (pretrainx pairs)
        scores = record["scores"]
        if (not isinstance(scores, list) or len(scores) != 2
                or not all(isinstance(x, (int, float)) for x in scores)):
            raise readers.CorpusError(f"{where}: \"scores\" must be two numbers, "
                                      f"got {scores!r:.60}")
        pair["margin"] = abs(scores[0] - scores[1])
    return pair


def _hh_pair(record: dict, where: str) -> dict:
    prompt, chosen = split_dialogue(readers.record_field(record, "chosen", where), where)
    rejected_prompt, rejected = split_dialogue(readers.record_field(record, "rejected", where),
                                               where)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected,
            "rejected_prompt": rejected_prompt}


PAIR_FORMATS = {"plain": _plain_pair, "hh": _hh_pair}


def read_pairs(path, fmt: str = "auto", max_pairs: int = 0) -> list[dict]:
    """Records -> [{"prompt", "chosen", "rejected", "rejected_prompt"}] with responses alone."""
    if fmt != "auto" and fmt not in PAIR_FORMATS:
        raise UserError(f"data.format must be 'auto', 'hh' or 'plain', got {fmt!r}")
    pairs = []
    for file in readers.expand_paths(path):
        with readers.open_data_file(file) as f:
            for line_no, record in readers.jsonl_records(f, file):
                kind = fmt if fmt != "auto" else ("plain" if "prompt" in record else "hh")
                pairs.append(PAIR_FORMATS[kind](record, f"{file}:{line_no}"))
                if max_pairs and len(pairs) >= max_pairs:
                    return pairs
    if not pairs:
        raise UserError(f"no preference pairs in {path!r}")
    return pairs


def encode_side(tokenizer, prompt: str, response: str, seq_len: int, pad_id: int = 0):
    """(ids, real-token mask, response mask, whether it was cut) of prompt + response in one
    right-padded row of ``seq_len``, cut from the left when too long."""
    p, r = tokenizer.encode(prompt), tokenizer.encode(response)
    ids, is_response = p + r, [0] * len(p) + [1] * len(r)
    cut = len(ids) > seq_len
    ids, is_response = ids[-seq_len:], is_response[-seq_len:]
    row = np.full(seq_len, pad_id, np.int32)
    mask = np.zeros(seq_len, bool)
    response = np.zeros(seq_len, np.float32)
    row[:len(ids)], mask[:len(ids)], response[:len(ids)] = ids, True, is_response
    return row, mask, response, cut


def encode_pairs(pairs: list[dict], tokenizer, seq_len: int) -> tuple[dict, int]:
    """Arrays of the pairs (see the module docstring) and how many pairs were cut."""
    out = {f"{s}{k}": [] for s in SIDES for k in ("", "_mask", "_response")}
    cut_pairs = 0
    for pair in pairs:
        cut_any = False
        for side in SIDES:
            prompt = pair["prompt"] if side == "chosen" else pair["rejected_prompt"]
            row, mask, response, cut = encode_side(tokenizer, prompt, pair[side], seq_len)
            out[side].append(row)
            out[f"{side}_mask"].append(mask)
            out[f"{side}_response"].append(response)
            cut_any |= cut
        cut_pairs += cut_any
    arrays = {k: np.stack(v) for k, v in out.items()}
    arrays["pair_weight"] = np.ones(len(pairs), np.float32)
    return arrays, cut_pairs


class HeldOutPairs:
    """Every row once, in order, in fixed batches; missing rows are row 0 with ``pair_weight`` 0."""

    def __init__(self, arrays: dict, batch_size: int):
        self.arrays, self.batch_size = arrays, batch_size
        self.num_rows = len(arrays["pair_weight"])

    def get_batch(self, index: int, shard=(0, 1)):
        rows = index * self.batch_size + np.arange(self.batch_size)
        real = rows < self.num_rows
        rows = np.where(real, rows, 0)[shard_rows(self.batch_size, shard)]
        batch = {k: np.asarray(v[rows]) for k, v in self.arrays.items()}
        batch["pair_weight"] = batch["pair_weight"] * real[shard_rows(self.batch_size, shard)]
        return batch


def split_pairs(pairs: list[dict], *, seed: int, val_fraction: float, dev_fraction: float = 0.0,
                eval_split: str = "test", min_margin: float = 0.0):
    """(train, evaluated) pairs, the split described in the module docstring."""
    if eval_split not in ("test", "dev"):
        raise UserError(f"data.eval_split must be 'test' or 'dev', got {eval_split!r}")
    if min_margin > 0 and any("margin" not in p for p in pairs):
        raise UserError("data.min_margin needs the rule's \"scores\" in every pair record")
    order = np.random.default_rng(seed).permutation(len(pairs))
    pairs = [pairs[i] for i in order]
    cut = len(pairs) - int(round(len(pairs) * val_fraction))
    dev = cut - int(round(len(pairs) * dev_fraction))
    train, evaluated = pairs[:dev], (pairs[cut:] if eval_split == "test" else pairs[dev:cut])
    keep = lambda part: [p for p in part if p.get("margin", np.inf) >= min_margin]
    return keep(train), keep(evaluated)


@register("preferences")
def build_preferences(config, *, batch_size, eval_batch_size, seq_len, seed, fields=None,
                      tokenizer=None) -> Dataset:
    pairs = read_pairs(config.path, config.format, config.max_pairs)
    train_pairs, val_pairs = split_pairs(
        pairs, seed=seed, val_fraction=float(config.val_fraction),
        dev_fraction=float(config.dev_fraction),
        eval_split=config.eval_split,
        min_margin=float(config.min_margin))
    if not train_pairs:
        raise UserError(f"no training pairs left of the {len(pairs)} in {config.path!r}")
    ordered = train_pairs + val_pairs
    cut = len(train_pairs)
    if tokenizer is None:
        texts = [p[k] for p in ordered for k in ("prompt", "chosen", "rejected", "rejected_prompt")]
        tokenizer = tokenizer_lib.from_spec(config.tokenizer, texts[:4 * cut], texts)
    arrays, cut_pairs = encode_pairs(ordered, tokenizer, seq_len)
    train = ArraySource({k: v[:cut] for k, v in arrays.items()}, batch_size, seed)
    val = HeldOutPairs({k: v[cut:] for k, v in arrays.items()}, eval_batch_size) if val_pairs else None
    info = {"train_pairs": cut, "val_pairs": len(val_pairs), "cut_pairs": int(cut_pairs),
            "vocab_size": int(tokenizer.vocab_size), "read_pairs": len(pairs)}
    log.info("preference pairs: %d read, %d train, %d held out (%s split, min margin %s), "
             "%d cut to %d tokens from the left", len(pairs), cut, len(val_pairs),
             config.eval_split, config.min_margin, cut_pairs, seq_len)
    return Dataset(train=train, val=val, tokenizer=tokenizer, info=info)
