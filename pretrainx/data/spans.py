"""T5's span corruption as pure numpy functions (Raffel et al. 2020, section 3.1.4 and the
``span_corruption`` task of the t5 library), and the length arithmetic behind it.

A row of ``length`` raw tokens gets ``round(length * density)`` noise tokens in
``round(noise / mean_span)`` spans (at least one token and one span; at most length - 1 noise
tokens). The draw is T5's (``random_spans_noise_mask``): the noise tokens are split into that
many non-empty spans uniformly at random over all such splits, the other tokens likewise into as
many non-empty runs, and the row alternates run, span, run, span, ... so it starts with kept text
and ends with noise. Every row of a given length therefore gives inputs and targets of fixed
lengths: :func:`lengths_for_raw` and, the other way round, :func:`raw_length_for` (T5's
``random_spans_helper``: inputs of 512 at density 0.15 and span 3 need 568 raw tokens and make
114 targets).

Corruption (:func:`corrupt_row`): each noise span is replaced in the inputs by one sentinel —
``<extra_id_0>`` for the first span, ``<extra_id_1>`` for the second, ... — and the targets are,
for each span, its sentinel followed by its tokens; both end with EOS. The sentinel *ids* come
from the tokenizer by name (``special_tokens.sentinel_ids``): in T5's SentencePiece vocabulary,
and in a char / byte vocabulary whose sentinels were asked for in descending order (what
``span_corruption`` asks), ``<extra_id_0>`` is the top id and the next ones descend from it.

Random draws come from ``draws`` (``random(shape)`` with rows first): a ``np.random.Generator``
or ``BatchContext.draws(rng)``. A row takes two draws: the noise split, then the kept split.
"""
from __future__ import annotations

import numpy as np

from pretrainx.errors import UserError


def span_counts(length: int, density: float, mean_span: float) -> tuple[int, int]:
    """(noise tokens, noise spans) for a row of ``length`` tokens, as T5's mask draws them."""
    length = max(int(length), 2)
    noise = min(max(int(round(length * density)), 1), length - 1)
    spans = max(int(round(noise / mean_span)), 1)
    return noise, spans


def lengths_for_raw(raw: int, density: float, mean_span: float) -> tuple[int, int]:
    """(input length, target length) made from ``raw`` tokens: kept tokens + one sentinel per
    span + EOS, and noise tokens + one sentinel per span + EOS."""
    noise, spans = span_counts(raw, density, mean_span)
    return raw - noise + spans + 1, noise + spans + 1


def raw_length_for(inputs_length: int, density: float = 0.15,
                   mean_span: float = 3.0) -> tuple[int, int]:
    """(raw tokens, target length): the most raw tokens whose corrupted inputs fit in
    ``inputs_length`` (T5's ``random_spans_helper``; 512 -> (568, 114) at 0.15 / 3)."""
    raw = inputs_length - 1
    while lengths_for_raw(raw + 1, density, mean_span)[0] <= inputs_length:
        raw += 1
    targets = lengths_for_raw(raw, density, mean_span)[1]
    if density == 0.5 and targets > inputs_length:   # T5's rule: keep targets <= inputs there
        raw, targets = raw - 1, targets - 1
    return raw, targets


def random_segmentation(draws, rows: int, items: int, segments: int) -> np.ndarray:
    """(rows, segments) lengths >= 1 summing to ``items``, each split equally likely: a random
    ``segments - 1`` of the ``items - 1`` gaps between items are cuts (T5 shuffles the same
    indicator)."""
    keys = draws.random((rows, items - 1))
    cut = np.argsort(np.argsort(keys, axis=1), axis=1) < segments - 1        # (rows, items-1)
    segment_of_item = np.concatenate([np.zeros((rows, 1), np.int64),
                                      np.cumsum(cut, axis=1)], axis=1)        # (rows, items)
    out = np.zeros((rows, segments), np.int64)
    np.add.at(out, (np.arange(rows)[:, None], segment_of_item), 1)
    return out


def noise_mask(draws, rows: int, length: int, density: float = 0.15,
               mean_span: float = 3.0) -> np.ndarray:
    """(rows, length) bool: T5's ``random_spans_noise_mask`` for every row."""
    noise, spans = span_counts(length, density, mean_span)
    full = max(length, 2)
    noise_lengths = random_segmentation(draws, rows, noise, spans)
    kept_lengths = random_segmentation(draws, rows, full - noise, spans)
    interleaved = np.stack([kept_lengths, noise_lengths], axis=2).reshape(rows, 2 * spans)
    starts = np.cumsum(interleaved, axis=1)[:, :-1]
    indicator = np.zeros((rows, full), np.int64)
    np.add.at(indicator, (np.arange(rows)[:, None], starts), 1)
    return (np.cumsum(indicator, axis=1) % 2 == 1)[:, :length]


def _spans_to_sentinels(tokens, mask, sentinel_ids) -> np.ndarray:
    """Each run of ``mask`` replaced by the next sentinel (the first run by sentinel_ids[0])."""
    prev = np.concatenate([[False], mask[:-1]])
    first = mask & ~prev
    n = int(first.sum())
    if n > len(sentinel_ids):
        raise UserError(f"{n} spans need {n} sentinels; the vocabulary has {len(sentinel_ids)}")
    out = np.where(first, np.asarray(sentinel_ids)[np.maximum(np.cumsum(first) - 1, 0)], tokens)
    return out[~(mask & prev)]


def corrupt_row(tokens, mask, sentinel_ids, eos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of one row: noise spans -> sentinels in the inputs; the targets are the
    kept runs -> sentinels, i.e. each span's sentinel and tokens. Both end with EOS."""
    tokens, mask = np.asarray(tokens), np.asarray(mask, bool)
    inputs = _spans_to_sentinels(tokens, mask, sentinel_ids)
    targets = _spans_to_sentinels(tokens, ~mask, sentinel_ids)
    return np.append(inputs, eos_id), np.append(targets, eos_id)


def span_corrupt(draws, tokens_BxL, sentinel_ids, eos_id: int, density: float = 0.15,
                 mean_span: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch of full rows -> (inputs B x I, targets B x T, noise mask B x L), I and T as
    :func:`lengths_for_raw` gives them."""
    tokens_BxL = np.asarray(tokens_BxL)
    B, L = tokens_BxL.shape
    mask = noise_mask(draws, B, L, density, mean_span)
    pairs = [corrupt_row(tokens_BxL[b], mask[b], sentinel_ids, eos_id) for b in range(B)]
    inputs = np.stack([p[0] for p in pairs]).astype(np.int32)
    targets = np.stack([p[1] for p in pairs]).astype(np.int32)
    return inputs, targets, mask
