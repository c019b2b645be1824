"""Decoder-only GPT (Flax Linen) with logical axis names, RoPE, packing and a KV cache.

Shapes use suffixes: B batch, T query length, S key length, H heads, D head dim,
E embed dim, M mlp hidden, V vocab.

Every parameter is created boxed by ``nn.with_logical_partitioning`` with these
logical axis names (map them to mesh axes with ``nn.logical_to_mesh_sharding``):

  wte/embedding ('vocab','embed')      wpe/embedding ('length','embed')
  attn q,k,v kernel ('embed','heads','kv'), bias ('heads','kv')
  attn out kernel ('heads','kv','embed'), bias ('embed',)
  mlp fc kernel ('embed','mlp'), bias ('mlp',); mlp proj kernel ('mlp','embed'), bias ('embed',)
  LayerNorm scale/bias ('embed',)      lm_head kernel ('embed','vocab'), bias ('vocab',)

rng names: "params" for init, "dropout" for dropout (only used when train=True).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_IMPLEMENTATIONS = ("auto", "xla", "cudnn")


def resolve_attention(choice: str, *, backend: str, dtype, head_dim: int, masked: bool,
                      decode: bool) -> str:
    """The jax.nn.dot_product_attention implementation to ask for.

    jax's own default (implementation=None) is the XLA path on every backend, so "auto" picks
    cuDNN's fused kernel itself where that kernel takes the call: a GPU, bf16/fp16, a head dim
    that is a multiple of 8 up to 128, plain causal masking (a dense packing mask would have to
    be materialised anyway) and not the one-token decode steps, whose shapes cuDNN rejects.
    """
    if choice != "auto":
        return choice
    fits = (backend == "gpu" and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16)
            and head_dim % 8 == 0 and head_dim <= 128 and not masked and not decode)
    return "cudnn" if fits else "xla"


def explicit_attention(q_BxTxHxD, k_BxSxHxD, v_BxSxHxD, mask, is_causal: bool, dropout_fn=None):
    """softmax(QK^T/sqrt(D)) V written out, so that the weights can be dropped (fused kernels
    take no dropout). Logits and softmax in float32; returns q's dtype."""
    T, S, D = q_BxTxHxD.shape[1], k_BxSxHxD.shape[1], q_BxTxHxD.shape[-1]
    logits_BxHxTxS = jnp.einsum("bthd,bshd->bhts", q_BxTxHxD, k_BxSxHxD,
                                preferred_element_type=jnp.float32) / math.sqrt(D)
    if is_causal:
        mask = jnp.tril(jnp.ones((T, S), dtype=jnp.bool_))[None, None]
    if mask is not None:
        logits_BxHxTxS = jnp.where(mask, logits_BxHxTxS, jnp.finfo(jnp.float32).min)
    probs_BxHxTxS = jax.nn.softmax(logits_BxHxTxS, axis=-1)
    if dropout_fn is not None:
        probs_BxHxTxS = dropout_fn(probs_BxHxTxS)
    return jnp.einsum("bhts,bshd->bthd", probs_BxHxTxS.astype(v_BxSxHxD.dtype), v_BxSxHxD)


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int
    num_layers: int
    num_heads: int
    embed_dim: int
    mlp_ratio: int = 4
    max_len: int = 1024
    dropout: float = 0.0
    attention_dropout: float = 0.0    # on the attention weights (nanoGPT uses its dropout here too)
    use_bias: bool = True
    tie_embeddings: bool = True
    rope: bool = False
    dtype: str = "float32"
    remat: bool = False
    attention: str = "auto"

    def __post_init__(self):
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} not divisible by num_heads {self.num_heads}")
        if self.attention not in _IMPLEMENTATIONS:
            raise ValueError(
                f"attention must be one of {list(_IMPLEMENTATIONS)}, got {self.attention!r}")
        if not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError(f"attention_dropout must be in [0, 1), got {self.attention_dropout}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")
        if self.rope and (self.embed_dim // self.num_heads) % 2:
            raise ValueError("rope needs an even head dim")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    @classmethod
    def from_config(cls, model_config) -> "TransformerConfig":
        """Build from a ConfigDict / mapping; unknown keys (e.g. "name") are ignored."""
        d = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _init(std: float, names: tuple):
    return nn.with_logical_partitioning(nn.initializers.normal(stddev=std), names)


def _zeros(names: tuple):
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


def _ones(names: tuple):
    return nn.with_logical_partitioning(nn.initializers.ones_init(), names)


def _layer_norm(cfg: TransformerConfig, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=1e-5, dtype=cfg.compute_dtype, use_bias=cfg.use_bias,
                        scale_init=_ones(("embed",)), bias_init=_zeros(("embed",)), name=name)


def apply_rope(x_BxTxHxD: jax.Array, positions_BxT: jax.Array, base: float = 10000.0) -> jax.Array:
    """Rotary embedding (rotate-half form), computed in float32, returned in x's dtype."""
    d = x_BxTxHxD.shape[-1]
    inv_freq = 1.0 / (base ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d))  # D/2
    angles = positions_BxT.astype(jnp.float32)[:, :, None] * inv_freq  # B,T,D/2
    sin = jnp.sin(angles)[:, :, None, :]
    cos = jnp.cos(angles)[:, :, None, :]
    x = x_BxTxHxD.astype(jnp.float32)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxTxHxD.dtype)


class CausalSelfAttention(nn.Module):
    config: TransformerConfig
    decode: bool = False

    @nn.compact
    def __call__(self, x_BxTxE, positions_BxT, mask, train: bool):
        cfg = self.config
        H, D = cfg.num_heads, cfg.head_dim
        dense = lambda name: nn.DenseGeneral(
            (H, D), use_bias=cfg.use_bias, dtype=cfg.compute_dtype,
            kernel_init=_init(0.02, ("embed", "heads", "kv")), bias_init=_zeros(("heads", "kv")),
            name=name)
        q_BxTxHxD, k_BxTxHxD, v_BxTxHxD = (dense(n)(x_BxTxE) for n in ("query", "key", "value"))
        if cfg.rope:
            q_BxTxHxD = apply_rope(q_BxTxHxD, positions_BxT)
            k_BxTxHxD = apply_rope(k_BxTxHxD, positions_BxT)

        is_causal = mask is None
        implementation = resolve_attention(
            cfg.attention, backend=jax.default_backend(), dtype=cfg.compute_dtype, head_dim=D,
            masked=mask is not None, decode=self.decode)
        if self.decode:
            if implementation == "cudnn":  # cuDNN flash attention rejects many decode shapes
                implementation = "xla"
            is_initialized = self.has_variable("cache", "cached_key")
            B, T = x_BxTxE.shape[:2]
            shape = (B, cfg.max_len, H, D)
            cached_key = self.variable("cache", "cached_key", jnp.zeros, shape, k_BxTxHxD.dtype)
            cached_value = self.variable("cache", "cached_value", jnp.zeros, shape, v_BxTxHxD.dtype)
            cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
            if is_initialized:  # on init only the (empty) cache is created; the chunk is run uncached
                idx = cache_index.value
                k_BxSxHxD = jax.lax.dynamic_update_slice(
                    cached_key.value, k_BxTxHxD.astype(cached_key.value.dtype), (0, idx, 0, 0))
                v_BxSxHxD = jax.lax.dynamic_update_slice(
                    cached_value.value, v_BxTxHxD.astype(cached_value.value.dtype), (0, idx, 0, 0))
                cached_key.value, cached_value.value = k_BxSxHxD, v_BxSxHxD
                cache_index.value = idx + T
                k_BxTxHxD, v_BxTxHxD = k_BxSxHxD, v_BxSxHxD
                query_pos_T = idx + jnp.arange(T, dtype=jnp.int32)
                key_pos_S = jnp.arange(cfg.max_len, dtype=jnp.int32)
                mask = (key_pos_S[None, :] <= query_pos_T[:, None])[None, None]  # 1,1,T,S
                is_causal = False

        if train and cfg.attention_dropout > 0:
            drop = nn.Dropout(cfg.attention_dropout, name="attn_dropout")
            y_BxTxHxD = explicit_attention(q_BxTxHxD, k_BxTxHxD, v_BxTxHxD, mask, is_causal,
                                           lambda p: drop(p, deterministic=False))
        else:
            attend = functools.partial(jax.nn.dot_product_attention, q_BxTxHxD, k_BxTxHxD,
                                       v_BxTxHxD, mask=mask, is_causal=is_causal)
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
            kernel_init=_init(0.02 / math.sqrt(2 * cfg.num_layers), ("heads", "kv", "embed")),
            bias_init=_zeros(("embed",)), name="out")(y_BxTxHxD)
        return nn.Dropout(cfg.dropout)(out_BxTxE, deterministic=not train)


class MLP(nn.Module):
    config: TransformerConfig

    @nn.compact
    def __call__(self, x_BxTxE, train: bool):
        cfg = self.config
        M = cfg.mlp_ratio * cfg.embed_dim
        h_BxTxM = nn.Dense(M, use_bias=cfg.use_bias, dtype=cfg.compute_dtype,
                           kernel_init=_init(0.02, ("embed", "mlp")), bias_init=_zeros(("mlp",)),
                           name="fc")(x_BxTxE)
        h_BxTxM = nn.gelu(h_BxTxM, approximate=True)
        out_BxTxE = nn.Dense(cfg.embed_dim, use_bias=cfg.use_bias, dtype=cfg.compute_dtype,
                             kernel_init=_init(0.02 / math.sqrt(2 * cfg.num_layers), ("mlp", "embed")),
                             bias_init=_zeros(("embed",)), name="proj")(h_BxTxM)
        return nn.Dropout(cfg.dropout)(out_BxTxE, deterministic=not train)


class Block(nn.Module):
    config: TransformerConfig
    decode: bool = False

    @nn.compact
    def __call__(self, x_BxTxE, positions_BxT, mask, train: bool):
        cfg = self.config
        x_BxTxE = x_BxTxE + CausalSelfAttention(cfg, self.decode, name="attn")(
            _layer_norm(cfg, "ln_1")(x_BxTxE), positions_BxT, mask, train)
        x_BxTxE = x_BxTxE + MLP(cfg, name="mlp")(_layer_norm(cfg, "ln_2")(x_BxTxE), train)
        return x_BxTxE


class GPT(nn.Module):
    """Decoder-only transformer. Returns float32 logits B,T,V.

    decode=True: KV-cache mode ("cache" collection, call with mutable=["cache"]). Each
    call appends its T tokens to the cache; positions default to cache_index + arange(T).
    segment_ids are ignored in decode mode (one document per batch row).
    """
    config: TransformerConfig
    decode: bool = False

    @nn.compact
    def __call__(self, tokens_BxT, *, positions=None, segment_ids=None, train: bool = False):
        cfg = self.config
        B, T = tokens_BxT.shape
        start = 0
        if self.decode:  # a model-level copy of the cache index, for the default positions
            is_initialized = self.has_variable("cache", "cache_index")
            index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
            if is_initialized:
                start = index.value
                index.value = start + T
        if positions is None:
            positions = jnp.broadcast_to(start + jnp.arange(T, dtype=jnp.int32), (B, T))

        mask = None
        if segment_ids is not None and not self.decode:
            causal_TxT = jnp.tril(jnp.ones((T, T), dtype=jnp.bool_))
            same_BxTxT = segment_ids[:, :, None] == segment_ids[:, None, :]
            mask = (causal_TxT[None] & same_BxTxT)[:, None]  # B,1,T,T

        wte = nn.Embed(cfg.vocab_size, cfg.embed_dim, dtype=cfg.compute_dtype,
                       embedding_init=_init(0.02, ("vocab", "embed")), name="wte")
        x_BxTxE = wte(tokens_BxT)
        if not cfg.rope:
            wpe = nn.Embed(cfg.max_len, cfg.embed_dim, dtype=cfg.compute_dtype,
                           embedding_init=_init(0.02, ("length", "embed")), name="wpe")
            x_BxTxE = x_BxTxE + wpe(positions)
        x_BxTxE = nn.Dropout(cfg.dropout)(x_BxTxE, deterministic=not train)

        block_cls = nn.remat(Block, static_argnums=(4,)) if cfg.remat else Block
        for i in range(cfg.num_layers):
            x_BxTxE = block_cls(cfg, self.decode, name=f"h_{i}")(x_BxTxE, positions, mask, train)
        x_BxTxE = _layer_norm(cfg, "ln_f")(x_BxTxE)

        if cfg.tie_embeddings:
            logits_BxTxV = wte.attend(x_BxTxE)
        else:
            logits_BxTxV = nn.Dense(cfg.vocab_size, use_bias=cfg.use_bias, dtype=cfg.compute_dtype,
                                    kernel_init=_init(0.02, ("embed", "vocab")),
                                    bias_init=_zeros(("vocab",)), name="lm_head")(x_BxTxE)
        return logits_BxTxV.astype(jnp.float32)


def _size(leaf: Any) -> int:
    return int(np.prod(leaf.shape))


def param_count(params, *, non_embedding: bool = True) -> int:
    """Number of parameters (boxed, unboxed or abstract; params tree or {'params': ...}).

    nanoGPT convention: non_embedding=True subtracts only the position-embedding table
    (wpe); the token embedding is counted because it is tied to the output head.
    """
    params = nn.unbox(params)
    total = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        keys = [getattr(k, "key", None) for k in path]
        if non_embedding and "wpe" in keys:
            continue
        total += _size(leaf)
    return total


def flops_per_token(cfg: TransformerConfig, n_params: int, seq_len: int) -> int:
    """Training FLOPs per token, nanoGPT's estimate_mfu / PaLM appendix B convention.

    6*N (forward+backward of the matmuls with N params) + 12*L*H*Q*T for attention
    (QK^T and AV), with L layers, H heads, Q head dim, T sequence length. Multiply by
    tokens per second and divide by peak FLOP/s for MFU.
    """
    L, H, Q, T = cfg.num_layers, cfg.num_heads, cfg.head_dim, seq_len
    return 6 * n_params + 12 * L * H * Q * T
