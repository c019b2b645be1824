"""Prefix language modelling on one decoder (Raffel et al. 2020, section 3.2.2; UL2's
S-denoiser): each row is cut at a random point; the model attends bidirectionally over the
prefix and causally after it, and the loss is taken on the suffix only.

Config: ``model.attention_kind = "prefix"``; ``config.prefix``: ``min_length`` (1) and
``max_fraction`` (1.0): the prefix holds between ``min_length`` and ``max_fraction`` * T tokens,
uniformly, drawn afresh for every row of every batch from the batch's (seed, step) generator.

Batch: the ``clm`` batch (``inputs``, ``targets`` = inputs shifted by one) plus ``prefix_length``
(B,) and ``weights``: position t predicts token t + 1, which is in the suffix when
t >= prefix_length - 1, so the prefix's own tokens (visible to every prefix position) are never
targets. ``pretrainx sample`` reads the prompt as the prefix (the KV cache attends
bidirectionally within the prompt) and continues it causally.
"""
from __future__ import annotations

import numpy as np

from pretrainx.errors import UserError
from pretrainx.objectives import settings
from pretrainx.objectives.base import register
from pretrainx.objectives.clm import CausalLM


def suffix_weights(prefix_length_B, length: int) -> np.ndarray:
    """(B, T) float32: 1 where position t's target (token t + 1) lies after the prefix."""
    t = np.arange(length)[None, :]
    return (t >= np.asarray(prefix_length_B)[:, None] - 1).astype(np.float32)


def draw_prefix_lengths(draws, rows: int, length: int, min_length: int = 1,
                        max_fraction: float = 1.0) -> np.ndarray:
    """(rows,) int32 prefix lengths, uniform in [min_length, max(min_length, max_fraction * T)]."""
    high = max(min_length, min(length, int(max_fraction * length)))
    return draws.integers(min_length, high + 1, (rows,)).astype(np.int32)


@register("prefix_lm")
class PrefixLM(CausalLM):
    batch_keys = ("inputs", "targets", "prefix_length", "weights")

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        if self.model_config.attention_kind != "prefix":
            raise UserError("prefix_lm needs config.model.attention_kind='prefix'")
        if config.data.packing != "stream":
            raise UserError("prefix_lm cuts whole rows: set config.data.packing='stream'")
        p = config.prefix
        self.min_length = int(p.min_length)
        self.max_fraction = float(p.max_fraction)

    @classmethod
    def check_config(cls, config):
        seq_len = int(config.data.seq_len)
        min_length = settings.integer(config, "prefix.min_length", 1, seq_len - 1)
        # a fraction below 0 would silently be plain causal LM, above 1 a prefix past the row
        max_fraction = settings.number(config, "prefix.max_fraction", 0.0, 1.0, low_open=True)
        if int(max_fraction * seq_len) < min_length:
            raise settings.SettingError(
                f"config.prefix.max_fraction {max_fraction:g} x data.seq_len {seq_len} is below "
                f"prefix.min_length {min_length}: every prefix would be {min_length} tokens")

    def init(self, rng):
        import jax.numpy as jnp
        T = int(self.config.data.seq_len)
        return self.model.init({"params": rng}, jnp.zeros((1, T), jnp.int32),
                               prefix_length=jnp.ones((1,), jnp.int32), train=False)["params"]

    def transform(self, batch, rng, *, ctx):
        inputs = np.asarray(batch["inputs"])
        B, T = inputs.shape
        prefix = draw_prefix_lengths(ctx.draws(rng), B, T, self.min_length, self.max_fraction)
        weights = suffix_weights(prefix, T)
        if "weights" in batch:
            weights = weights * np.asarray(batch["weights"], np.float32)
        return {**batch, "prefix_length": prefix, "weights": weights}
