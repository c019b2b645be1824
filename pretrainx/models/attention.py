"""Multi-head attention for every architecture: self-attention (with an optional KV cache and
RoPE) and cross-attention (a decoder over an encoder's output), and T5's relative position bias.

Parameter names (``query``/``key``/``value``/``out``) and logical axes are listed in
``transformer.py``. The attention itself is ``jax.nn.dot_product_attention`` (cuDNN's fused kernel
where it applies), or :func:`explicit_attention` when the weights are dropped out.
"""
from __future__ import annotations

import functools
import logging
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.models.transformer import (TransformerConfig, init_std, normal_init, ones_init,
                                          residual_out_init, zeros_init)


def resolve_attention(choice: str, *, backend: str, dtype, head_dim: int, masked: bool,
                      decode: bool) -> str:
    """The jax.nn.dot_product_attention implementation to ask for.

    jax's own default (implementation=None) is the XLA path on every backend, so "auto" picks
    cuDNN's fused kernel itself where that kernel takes the call: a GPU, bf16/fp16, a head dim
    that is a multiple of 8 up to 128, plain causal masking (a dense packing mask or a bias would
    have to be materialised anyway) and not the one-token decode steps, whose shapes cuDNN rejects.
    """
    if choice != "auto":
        return choice
    fits = (backend == "gpu" and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16)
            and head_dim % 8 == 0 and head_dim <= 128 and not masked and not decode)
    return "cudnn" if fits else "xla"


def explicit_attention(q_BxTxHxD, k_BxSxHxD, v_BxSxHxD, mask, is_causal: bool, dropout_fn=None,
                       *, bias=None, scale: float | None = None):
    """softmax(scale QK^T + bias) V written out, so that the weights can be dropped (fused kernels
    take no dropout). ``scale`` defaults to 1/sqrt(D). Logits and softmax in float32; returns
    q's dtype."""
    T, S, D = q_BxTxHxD.shape[1], k_BxSxHxD.shape[1], q_BxTxHxD.shape[-1]
    groups = q_BxTxHxD.shape[2] // k_BxSxHxD.shape[2]
    if groups > 1:      # grouped-query: query head h reads key/value head h // groups
        k_BxSxHxD = jnp.repeat(k_BxSxHxD, groups, axis=2)
        v_BxSxHxD = jnp.repeat(v_BxSxHxD, groups, axis=2)
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    logits_BxHxTxS = jnp.einsum("bthd,bshd->bhts", q_BxTxHxD, k_BxSxHxD,
                                preferred_element_type=jnp.float32) * scale
    if bias is not None:
        logits_BxHxTxS = logits_BxHxTxS + bias.astype(jnp.float32)
    if is_causal:
        mask = jnp.tril(jnp.ones((T, S), dtype=jnp.bool_))[None, None]
    if mask is not None:
        logits_BxHxTxS = jnp.where(mask, logits_BxHxTxS, jnp.finfo(jnp.float32).min)
    probs_BxHxTxS = jax.nn.softmax(logits_BxHxTxS, axis=-1)
    if dropout_fn is not None:
        probs_BxHxTxS = dropout_fn(probs_BxHxTxS)
    return jnp.einsum("bhts,bshd->bthd", probs_BxHxTxS.astype(v_BxSxHxD.dtype), v_BxSxHxD)


def rope_inv_freq(cfg: TransformerConfig) -> jax.Array:
    """The D/2 rotary frequencies: theta^(-2i/D), and with ``rope_scaling="llama3"`` Llama 3.1's
    rescaling (as Hugging Face's ``_compute_llama3_parameters``): wavelengths longer than
    original_max_len / low_freq_factor are divided by the factor, shorter than
    original_max_len / high_freq_factor kept, the band between interpolated smoothly."""
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d))
    if cfg.rope_scaling == "none":
        return inv_freq
    old_len, factor = cfg.rope_original_max_len, cfg.rope_scaling_factor
    low, high = cfg.rope_low_freq_factor, cfg.rope_high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = jnp.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return jnp.where(is_medium, smoothed, scaled)


def apply_rope(x_BxTxHxD: jax.Array, positions_BxT: jax.Array, inv_freq=None) -> jax.Array:
    """Rotary embedding (rotate-half form), computed in float32, returned in x's dtype;
    ``inv_freq`` (D/2): the frequencies, by default base 10,000's."""
    d = x_BxTxHxD.shape[-1]
    if inv_freq is None:
        inv_freq = 1.0 / (10000.0 ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d))  # D/2
    angles = positions_BxT.astype(jnp.float32)[:, :, None] * inv_freq  # B,T,D/2
    sin = jnp.sin(angles)[:, :, None, :]
    cos = jnp.cos(angles)[:, :, None, :]
    x = x_BxTxHxD.astype(jnp.float32)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxTxHxD.dtype)


class Attention(nn.Module):
    """Multi-head attention under a mask (None: causal), optionally with an additive ``bias``
    (B or 1, H, T, S) such as T5's relative positions.

    Self-attention by default; with ``context`` (B, S, E) it is cross-attention: keys and values
    come from the context (an encoder's output), and there is no RoPE and no cache.

    decode=True keeps a KV cache ("cache" collection): each call appends its T tokens at the
    cache index, with ``input_mask`` (B, T) marking which of them are real (left padding is not),
    and attends over the cached slots that are real: causally, or, for a model whose
    ``attention_kind`` is "prefix", bidirectionally within the call's own tokens (the prompt is
    the prefix; later one-token calls are causal either way).
    """
    config: TransformerConfig
    decode: bool = False

    @nn.compact
    def __call__(self, x_BxTxE, positions_BxT, mask, train: bool, input_mask=None, bias=None,
                 context=None):
        cfg = self.config
        H, D = cfg.num_heads, cfg.head_dim
        dense = lambda name, std, heads: nn.DenseGeneral(
            (heads, D), use_bias=cfg.use_bias or cfg.qkv_bias, dtype=cfg.compute_dtype,
            dot_general=cfg.dense_dot_general,
            kernel_init=normal_init(std, ("embed", "heads", "kv")),
            bias_init=zeros_init(("heads", "kv")), name=name)
        source_BxSxE = x_BxTxE if context is None else context
        q_BxTxHxD = dense("query", init_std(cfg, "q"), H)(x_BxTxE)
        # keys and values: kv_heads heads (fewer than H: grouped-query attention; the cache
        # holds only these, and jax's attention groups the query heads over them)
        k_BxTxHxD = dense("key", init_std(cfg, "kv"), cfg.kv_heads)(source_BxSxE)
        v_BxTxHxD = dense("value", init_std(cfg, "kv"), cfg.kv_heads)(source_BxSxE)
        if cfg.qk_norm:     # each head's q and k to unit RMS (times a learned scale), pre-RoPE
            qk_norm = lambda name: nn.RMSNorm(epsilon=cfg.norm_eps, dtype=cfg.compute_dtype,
                                              scale_init=ones_init(("kv",)), name=name)
            q_BxTxHxD = qk_norm("query_norm")(q_BxTxHxD)
            k_BxTxHxD = qk_norm("key_norm")(k_BxTxHxD)
        if cfg.rope and context is None:
            inv_freq = rope_inv_freq(cfg)
            q_BxTxHxD = apply_rope(q_BxTxHxD, positions_BxT, inv_freq)
            k_BxTxHxD = apply_rope(k_BxTxHxD, positions_BxT, inv_freq)

        cached = self.decode and context is None
        is_causal = mask is None and context is None
        implementation = resolve_attention(
            cfg.attention, backend=jax.default_backend(), dtype=cfg.compute_dtype, head_dim=D,
            masked=mask is not None or bias is not None, decode=cached)
        if cached:
            if implementation == "cudnn":  # cuDNN flash attention rejects many decode shapes
                implementation = "xla"
            k_BxTxHxD, v_BxTxHxD, mask = self._cached(k_BxTxHxD, v_BxTxHxD, input_mask)
            is_causal = mask is None
        scale = None if cfg.scaled_attention else 1.0

        if train and cfg.attention_dropout > 0:
            drop = nn.Dropout(cfg.attention_dropout, name="attn_dropout")
            y_BxTxHxD = explicit_attention(q_BxTxHxD, k_BxTxHxD, v_BxTxHxD, mask, is_causal,
                                           lambda p: drop(p, deterministic=False), bias=bias,
                                           scale=scale)
        else:
            attend = functools.partial(jax.nn.dot_product_attention, q_BxTxHxD, k_BxTxHxD,
                                       v_BxTxHxD, bias=bias, mask=mask, is_causal=is_causal,
                                       scale=scale)
            try:
                y_BxTxHxD = attend(implementation=implementation)
            except (NotImplementedError, RuntimeError) as e:
                # jax checks cuDNN's version, GPU generation and shapes while tracing; "auto"
                # then takes the XLA path, an explicit "cudnn" lets the error stand.
                if cfg.attention != "auto":
                    raise
                logging.getLogger(__name__).warning("cuDNN attention unavailable (%s); using XLA", e)
                y_BxTxHxD = attend(implementation="xla")
        out_BxTxE = nn.DenseGeneral(
            cfg.embed_dim, axis=(-2, -1), use_bias=cfg.use_bias, dtype=cfg.compute_dtype,
            dot_general=cfg.dense_dot_general,
            kernel_init=residual_out_init(cfg, "out", ("heads", "kv", "embed")),
            bias_init=zeros_init(("embed",)), name="out")(y_BxTxHxD)
        return nn.Dropout(cfg.dropout)(out_BxTxE, deterministic=not train)

    def _cached(self, k_BxTxHxD, v_BxTxHxD, input_mask):
        """Append this chunk to the cache; (keys, values, mask) to attend over. On init only the
        (empty) cache is created and the chunk attends to itself causally."""
        cfg = self.config
        is_initialized = self.has_variable("cache", "cached_key")
        B, T, H, D = k_BxTxHxD.shape
        shape = (B, cfg.max_len, H, D)
        cached_key = self.variable("cache", "cached_key", jnp.zeros, shape, k_BxTxHxD.dtype)
        cached_value = self.variable("cache", "cached_value", jnp.zeros, shape, v_BxTxHxD.dtype)
        cached_valid = self.variable("cache", "cached_valid", jnp.zeros, (B, cfg.max_len), jnp.bool_)
        cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
        if not is_initialized:
            return k_BxTxHxD, v_BxTxHxD, None
        idx = cache_index.value
        valid_BxT = jnp.ones((B, T), jnp.bool_) if input_mask is None else input_mask.astype(bool)
        k_BxSxHxD = jax.lax.dynamic_update_slice(
            cached_key.value, k_BxTxHxD.astype(cached_key.value.dtype), (0, idx, 0, 0))
        v_BxSxHxD = jax.lax.dynamic_update_slice(
            cached_value.value, v_BxTxHxD.astype(cached_value.value.dtype), (0, idx, 0, 0))
        valid_BxS = jax.lax.dynamic_update_slice(cached_valid.value, valid_BxT, (0, idx))
        cached_key.value, cached_value.value, cached_valid.value = k_BxSxHxD, v_BxSxHxD, valid_BxS
        cache_index.value = idx + T
        query_pos_T = idx + jnp.arange(T, dtype=jnp.int32)
        key_pos_S = jnp.arange(cfg.max_len, dtype=jnp.int32)
        if cfg.attention_kind == "prefix":     # the call's tokens are a prefix: see each other
            seen_TxS = jnp.broadcast_to(key_pos_S[None, :] < idx + T, (T, cfg.max_len))
        else:
            seen_TxS = key_pos_S[None, :] <= query_pos_T[:, None]
        return k_BxSxHxD, v_BxSxHxD, (seen_TxS[None] & valid_BxS[:, None, :])[:, None]  # B,1,T,S


def relative_position_bucket(relative_position, *, bidirectional: bool, num_buckets: int = 32,
                             max_distance: int = 128):
    """T5's bucket of ``relative_position`` = key position - query position (Raffel et al. 2020,
    section 2.1; mesh_tensorflow ``_relative_position_bucket``).

    Half the buckets hold exact distances 0 .. num_buckets/2 - 1; the rest cover larger distances
    in logarithmically wider bins up to ``max_distance``, beyond which all share the last bucket.
    Bidirectional (the encoder): half the buckets for keys after the query, half for keys before.
    Unidirectional (the decoder): keys after the query all fall in bucket 0.
    Works on numpy and jax arrays alike (int32 out).
    """
    xp = jnp if isinstance(relative_position, jax.Array) else np
    n = -relative_position
    bucket = 0
    if bidirectional:
        num_buckets //= 2
        bucket = (n < 0).astype(np.int32) * num_buckets
        n = xp.abs(n)
    else:
        n = xp.maximum(n, 0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    # log-spaced bins; the eps keeps log() finite at n = 0 (that branch is not taken there)
    large = max_exact + (xp.log(n.astype(np.float32) / max_exact + np.finfo(np.float32).eps)
                         / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).astype(np.int32)
    large = xp.minimum(large, num_buckets - 1)
    return (bucket + xp.where(is_small, n, large)).astype(np.int32)


class RelativePositionBias(nn.Module):
    """T5's learned scalar per (bucket, head), added to every layer's attention logits; one table
    per stack (the encoder's bidirectional, the decoder's causal), shared by its layers."""
    config: TransformerConfig
    bidirectional: bool

    @nn.compact
    def __call__(self, query_positions_T, key_positions_S):
        cfg = self.config
        table_NxH = self.param("rel_embedding", normal_init(
            init_std(cfg, "relpos"), ("relpos_buckets", "heads")),
            (cfg.relative_buckets, cfg.num_heads), jnp.float32)
        buckets_TxS = relative_position_bucket(
            key_positions_S[None, :] - query_positions_T[:, None], bidirectional=self.bidirectional,
            num_buckets=cfg.relative_buckets, max_distance=cfg.relative_max_distance)
        return jnp.transpose(table_NxH[buckets_TxS], (2, 0, 1))[None]      # 1,H,T,S
