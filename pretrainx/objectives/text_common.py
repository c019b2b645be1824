"""What the text objectives beyond ``clm`` share: the raw-token data request, the most frequent
training token (the unigram baseline of a prediction), and exact pooling of a component's mean
inside a mixture.

Component metrics of a mixture (``ul2_r_loss``, ``clm_loss``): the runner pools a step's
micro-batches and the validation batches weighted by the step's denominator (all target
tokens), but a component's mean must be weighted by *its own* tokens. So a loss reports, per
component c, ``c_loss_share`` = (c's summed loss) / (all tokens) and ``c_share`` = (c's tokens) /
(all tokens); both pool exactly, and ``finalize_metrics`` divides them: :func:`component_means`.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from pretrainx.data import special_tokens as st
from pretrainx.data.base import TOKENS
from pretrainx.objectives import settings
from pretrainx.objectives.base import DataRequest


def raw_request(config, seq_len: int, special_tokens=()) -> DataRequest:
    """Raw token rows of ``seq_len``, with their segment ids and positions when the data packs
    documents into rows."""
    packed = config.data.packing != "stream"
    fields = (TOKENS, "segment_ids", "positions") if packed else (TOKENS,)
    return DataRequest(seq_len=int(seq_len), fields=fields, special_tokens=tuple(special_tokens))


def check_sample_prompt(config, marker: str, spelling: str) -> None:
    """The eval samples of a filling objective fill ``config.sample.prompt``: one holding no
    ``marker`` (``[MASK]``, a sentinel) is refused before training rather than at the first
    eval, naming what to put in it (``spelling``)."""
    prompt = config.sample.prompt
    if marker not in prompt:
        raise settings.SettingError(
            f"config.sample.prompt {prompt!r} has no {spelling}: the eval samples fill it in; "
            f"put {spelling} where the model is to fill, e.g. "
            f"--config.sample.prompt='ROMEO: I {spelling} thee'")


def token_counts(source, vocab_size: int, batches: int = 64) -> np.ndarray:
    """How often each id occurs in a batch source's training text: the whole token stream or
    all packed rows where the source holds them in memory, else ``batches`` batches (memory-mapped
    shards: counting a corpus bigger than memory would cost its whole reading at every start)."""
    in_memory = hasattr(source, "tokens") and not hasattr(source.tokens, "windows")
    if in_memory:                                                 # a token stream
        ids = np.asarray(source.tokens)
    elif hasattr(source, "arrays") and TOKENS in source.arrays:   # packed rows
        rows = source.arrays
        ids = rows[TOKENS][rows["segment_ids"] > 0] if "segment_ids" in rows else rows[TOKENS]
    else:
        ids = np.concatenate([source.get_batch(i)[TOKENS].ravel() for i in range(batches)])
    return np.bincount(np.asarray(ids, np.int64).ravel(), minlength=vocab_size)[:vocab_size]


def most_frequent_token(dataset, vocab_size: int) -> int:
    """The most frequent ordinary (not special) token of the training data: always predicting
    it is the unigram baseline a masked-token accuracy is compared with."""
    counts = token_counts(dataset.train, vocab_size)
    counts[[i for i in st.special_ids(dataset.tokenizer) if i < vocab_size]] = 0
    return int(np.argmax(counts))


def add_component(metrics: dict, name: str, token_loss_BxT, weights_BxT, total):
    """Put component ``name``'s pooled-exact shares into ``metrics`` (module docstring)."""
    total = jnp.maximum(total, 1.0)
    metrics[f"{name}_loss_share"] = (token_loss_BxT * weights_BxT).sum() / total
    metrics[f"{name}_share"] = weights_BxT.sum() / total
    return metrics


def component_means(metrics: dict, names) -> dict:
    """``{name}_loss`` from the pooled shares (nan for a component absent from every batch)."""
    out = dict(metrics)
    for name in names:
        share = out.pop(f"{name}_share", None)
        loss_share = out.pop(f"{name}_loss_share", None)
        if share is None:
            continue
        out[f"{name}_loss"] = jnp.where(share > 0, loss_share / jnp.maximum(share, 1e-12), jnp.nan)
    return out
