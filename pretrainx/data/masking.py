"""BERT's masked-LM corruption as pure numpy functions (Devlin et al. 2019, section 3.1 and
appendix A.1), with RoBERTa's dynamic masking and a masking-rate schedule.

* Selection (:func:`select_positions`): in each row a fraction ``rate`` of the candidate tokens
  (every token but the special ones and padding) is selected, uniformly without replacement.
  The count is ``rate * candidates`` rounded stochastically (floor(x + u)), so its expectation
  is exactly ``rate`` of the candidates whatever the row length. With whole-word masking the
  units drawn are words (Google's ``--do_whole_word_mask``): all tokens of a selected word go.
* Replacement (:func:`corrupt`): of the selected tokens 80 % become [MASK], 10 % a random
  ordinary token, 10 % stay as they are; the loss is taken on all selected ones.
* Dynamic masking (Liu et al. 2019, RoBERTa, section 4.1): the draws come from the batch's own
  generator, seeded by (seed, batch index), so a row seen again in a later epoch gets a new mask
  and a resumed run draws the same masks again.
* Rate schedule (:func:`masking_rate`): constant, or linear / cosine from a start rate to the
  final rate over training (Yang et al. 2023, "Learning Better Masking for Better Language
  Model Pre-training": a decreasing rate, e.g. 30 % -> 15 %).

The random draws come from ``draws``: a ``np.random.Generator``, or ``BatchContext.draws(rng)``,
which makes them for the global batch and keeps this process's rows.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from pretrainx.data import special_tokens as st
from pretrainx.errors import UserError

SCHEDULES = ("constant", "linear", "cosine")
MASK_FRACTION, RANDOM_FRACTION = 0.8, 0.1      # BERT: 80 % [MASK], 10 % random, 10 % unchanged


@dataclasses.dataclass(frozen=True)
class VocabTables:
    """What masking needs to know about a vocabulary, one entry per id."""
    special: np.ndarray       # (V,) bool: never selected, never drawn as a random replacement
    glue_left: np.ndarray     # (V,) bool: continues the word of the token before it ...
    glue_right: np.ndarray    # (V,) bool: ... when that token lets a word go on
    mask_id: int

    @property
    def ordinary_ids(self) -> np.ndarray:
        return np.flatnonzero(~self.special)


def _alnum(ch: str) -> bool:
    return ch.isalnum() or ord(ch) >= 128 or ch == "_"


def vocab_tables(tokenizer, vocab_size: int | None = None) -> VocabTables:
    """Tables for ``tokenizer`` (rows past its vocabulary, up to the model's ``vocab_size``, are
    special: never real input). Word pieces: WordPiece's "##" marks a continuation; otherwise a
    token whose text starts with a letter or digit continues a word after a token that ends with
    one (byte-level BPE's "Ġ" and SentencePiece's "▁" mark a space, so those tokens start words;
    for chars and bytes a word is a run of letters and digits)."""
    strings = tokenizer.token_strings()
    V = max(vocab_size or 0, len(strings))
    special = np.ones(V, bool)
    special[:len(strings)] = False
    special[st.special_ids(tokenizer)] = True
    wordpiece = getattr(tokenizer, "kind", "") == "wordpiece"
    glue_left, glue_right = np.zeros(V, bool), np.zeros(V, bool)
    for i, s in enumerate(strings):
        if special[i] or not s:
            continue
        if wordpiece:
            glue_left[i], glue_right[i] = s.startswith("##"), True
        else:
            glue_left[i], glue_right[i] = _alnum(s[0]), _alnum(s[-1])
    if not tokenizer.has_token(st.MASK):
        raise UserError(f"the tokenizer has no {st.MASK} token (add it through the objective's "
                        f"DataRequest.special_tokens)")
    return VocabTables(special, glue_left, glue_right, tokenizer.token_id(st.MASK))


def candidates(tokens_BxT, tables: VocabTables, segment_ids=None) -> np.ndarray:
    """Positions that may be selected: not a special token, not padding (segment 0)."""
    out = ~tables.special[tokens_BxT]
    if segment_ids is not None:
        out &= segment_ids > 0
    return out


def word_starts(tokens_BxT, tables: VocabTables, segment_ids=None) -> np.ndarray:
    """(B, T) bool: the token begins a word (see :func:`vocab_tables`); a row's first token and
    a packed document's first token always do."""
    glued = np.zeros(tokens_BxT.shape, bool)
    glued[:, 1:] = tables.glue_left[tokens_BxT[:, 1:]] & tables.glue_right[tokens_BxT[:, :-1]]
    if segment_ids is not None:
        glued[:, 1:] &= segment_ids[:, 1:] == segment_ids[:, :-1]
    return ~glued


def select_positions(draws, candidates_BxT, rate: float, word_start_BxT=None) -> np.ndarray:
    """(B, T) bool: ``rate`` of each row's candidates, drawn without replacement (the count
    rounded stochastically). With ``word_start_BxT`` whole words are drawn: ``rate`` of the
    candidate words, every candidate token of a drawn word selected."""
    if not 0.0 <= rate <= 1.0:
        raise UserError(f"masking rate must be in [0, 1], got {rate}")
    B, T = candidates_BxT.shape
    keys_BxT = draws.random((B, T))
    round_B = draws.random((B, 1))[:, 0]
    units_BxT = candidates_BxT if word_start_BxT is None else candidates_BxT & word_start_BxT
    count_B = np.floor(rate * units_BxT.sum(axis=1) + round_B).astype(np.int64)
    rank_BxT = np.argsort(np.argsort(np.where(units_BxT, keys_BxT, 2.0), axis=1), axis=1)
    chosen_BxT = units_BxT & (rank_BxT < count_B[:, None])
    if word_start_BxT is None:
        return chosen_BxT
    # every token takes the choice made for the start of its word
    start_index_BxT = np.maximum.accumulate(np.where(word_start_BxT, np.arange(T), 0), axis=1)
    return candidates_BxT & np.take_along_axis(chosen_BxT, start_index_BxT, axis=1)


def corrupt(draws, tokens_BxT, selected_BxT, tables: VocabTables):
    """(inputs, how): selected tokens replaced 80 % by [MASK], 10 % by a random ordinary token,
    10 % kept; ``how`` is 0 unselected, 1 [MASK], 2 random, 3 kept (for statistics)."""
    B, T = tokens_BxT.shape
    u_BxT = draws.random((B, T))
    ordinary = tables.ordinary_ids
    random_BxT = ordinary[draws.integers(0, len(ordinary), (B, T))]
    to_mask = selected_BxT & (u_BxT < MASK_FRACTION)
    to_random = selected_BxT & (u_BxT >= MASK_FRACTION) & (u_BxT < MASK_FRACTION + RANDOM_FRACTION)
    inputs = np.where(to_mask, tables.mask_id, np.where(to_random, random_BxT, tokens_BxT))
    how = np.where(to_mask, 1, np.where(to_random, 2, np.where(selected_BxT, 3, 0)))
    return inputs.astype(np.int32), how.astype(np.int8)


def mask_tokens(draws, tokens_BxT, tables: VocabTables, rate: float, *, whole_word: bool = False,
                segment_ids=None):
    """BERT's corruption of a batch: (inputs, selected) with ``selected`` the positions the loss
    is taken on."""
    tokens_BxT = np.asarray(tokens_BxT)
    cand = candidates(tokens_BxT, tables, segment_ids)
    starts = word_starts(tokens_BxT, tables, segment_ids) if whole_word else None
    selected = select_positions(draws, cand, rate, starts)
    inputs, _ = corrupt(draws, tokens_BxT, selected, tables)
    return inputs, selected


def masking_rate(schedule: str, start: float, end: float, progress: float) -> float:
    """The masking rate at ``progress`` = step / total steps in [0, 1]: ``end`` throughout
    ("constant"), or from ``start`` to ``end`` along a line or a half cosine."""
    if schedule not in SCHEDULES:
        raise UserError(f"masking rate schedule must be one of {SCHEDULES}, got {schedule!r}")
    p = min(max(float(progress), 0.0), 1.0)
    if schedule == "constant":
        return float(end)
    if schedule == "linear":
        return float(start + (end - start) * p)
    return float(end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * p)))
