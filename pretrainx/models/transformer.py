"""Shared transformer layers (Flax Linen): config, attention masks, self-attention with an
optional KV cache, MLP, pre-LN block. Architectures (``gpt.py``, and the encoder / encoder-decoder
models to come) are built from these.

Shapes use suffixes: B batch, T query length, S key length, H heads, D head dim,
E embed dim, M mlp hidden, V vocab.

Every parameter is created boxed by ``nn.with_logical_partitioning`` with these logical axis
names (map them to mesh axes with ``nn.logical_to_mesh_sharding``):

  attn q,k,v kernel ('embed','heads','kv'), bias ('heads','kv')
  attn out kernel ('heads','kv','embed'), bias ('embed',)
  mlp fc kernel ('embed','mlp'), bias ('mlp',); mlp proj kernel ('mlp','embed'), bias ('embed',)
  LayerNorm scale/bias ('embed',)

Attention kinds (``TransformerConfig.attention_kind``), see :func:`attention_mask`:
  "causal"         position i attends to j <= i (GPT)
  "bidirectional"  every position attends to every position (BERT-style encoders)
  "prefix"         bidirectional inside a prefix, causal after it (prefix LM, UL2's S-denoiser);
                   the prefix comes as a batch key: ``prefix_length`` (B,) or ``prefix_mask`` (B, T)
Packed rows (``segment_ids``) keep attention inside a document whatever the kind, and an
``input_mask`` (B, T) hides padding keys.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

_IMPLEMENTATIONS = ("auto", "xla", "cudnn")
ATTENTION_KINDS = ("causal", "bidirectional", "prefix")


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


def attention_mask(kind: str, length: int, *, segment_ids=None, prefix_length=None,
                   prefix_mask=None, input_mask=None):
    """The (B or 1, 1, T, T) boolean mask of attention ``kind``, or None for plain causal
    attention (then the fused kernels' own causal path is used).

    ``prefix_length`` (B,) or ``prefix_mask`` (B, T, True on prefix tokens; several prefixes in a
    packed row are fine with ``segment_ids``) give the "prefix" kind its prefix.
    """
    if kind not in ATTENTION_KINDS:
        raise ValueError(f"attention_kind must be one of {ATTENTION_KINDS}, got {kind!r}")
    has_prefix = prefix_length is not None or prefix_mask is not None
    if kind == "prefix" and not has_prefix:
        raise ValueError("attention_kind 'prefix' needs a prefix_length (B,) or prefix_mask (B, T) "
                         "batch key")
    if kind != "prefix" and has_prefix:
        raise ValueError(f"a prefix was given but attention_kind is {kind!r}; use 'prefix'")
    if kind == "causal" and segment_ids is None and input_mask is None:
        return None
    T = length
    query_TxT, key_TxT = jnp.arange(T)[:, None], jnp.arange(T)[None, :]
    mask = (key_TxT <= query_TxT)[None] if kind != "bidirectional" else jnp.ones((1, T, T), bool)
    if kind == "prefix":
        if prefix_mask is None:
            prefix_mask = jnp.arange(T)[None, :] < jnp.asarray(prefix_length)[:, None]
        mask = mask | prefix_mask.astype(bool)[:, None, :]        # every query sees the prefix
    if segment_ids is not None:
        mask = mask & (segment_ids[:, :, None] == segment_ids[:, None, :])
    if input_mask is not None:
        mask = mask & input_mask.astype(bool)[:, None, :]        # padding is never a key
    return mask[:, None]                                          # B,1,T,T


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
    attention: str = "auto"           # the kernel: "auto" | "xla" | "cudnn"
    attention_kind: str = "causal"    # which positions see which: see ATTENTION_KINDS

    def __post_init__(self):
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} not divisible by num_heads {self.num_heads}")
        if self.attention not in _IMPLEMENTATIONS:
            raise ValueError(
                f"attention must be one of {list(_IMPLEMENTATIONS)}, got {self.attention!r}")
        if self.attention_kind not in ATTENTION_KINDS:
            raise ValueError(f"attention_kind must be one of {list(ATTENTION_KINDS)}, got "
                             f"{self.attention_kind!r}")
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


def normal_init(std: float, names: tuple):
    return nn.with_logical_partitioning(nn.initializers.normal(stddev=std), names)


def zeros_init(names: tuple):
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


def ones_init(names: tuple):
    return nn.with_logical_partitioning(nn.initializers.ones_init(), names)


def layer_norm(cfg: TransformerConfig, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=1e-5, dtype=cfg.compute_dtype, use_bias=cfg.use_bias,
                        scale_init=ones_init(("embed",)), bias_init=zeros_init(("embed",)), name=name)


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


class SelfAttention(nn.Module):
    """Multi-head self-attention under a mask from :func:`attention_mask` (None: causal).

    decode=True keeps a KV cache ("cache" collection): each call appends its T tokens at the
    cache index, with ``input_mask`` (B, T) marking which of them are real (left padding is not),
    and attends causally over the cached slots that are real. Decoding is causal only.
    """
    config: TransformerConfig
    decode: bool = False

    @nn.compact
    def __call__(self, x_BxTxE, positions_BxT, mask, train: bool, input_mask=None):
        cfg = self.config
        H, D = cfg.num_heads, cfg.head_dim
        dense = lambda name: nn.DenseGeneral(
            (H, D), use_bias=cfg.use_bias, dtype=cfg.compute_dtype,
            kernel_init=normal_init(0.02, ("embed", "heads", "kv")),
            bias_init=zeros_init(("heads", "kv")), name=name)
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
            k_BxTxHxD, v_BxTxHxD, mask = self._cached(k_BxTxHxD, v_BxTxHxD, input_mask)
            is_causal = mask is None

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
            kernel_init=normal_init(0.02 / math.sqrt(2 * cfg.num_layers), ("heads", "kv", "embed")),
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
        causal_TxS = key_pos_S[None, :] <= query_pos_T[:, None]
        return k_BxSxHxD, v_BxSxHxD, (causal_TxS[None] & valid_BxS[:, None, :])[:, None]  # B,1,T,S


class MLP(nn.Module):
    config: TransformerConfig

    @nn.compact
    def __call__(self, x_BxTxE, train: bool):
        cfg = self.config
        M = cfg.mlp_ratio * cfg.embed_dim
        h_BxTxM = nn.Dense(M, use_bias=cfg.use_bias, dtype=cfg.compute_dtype,
                           kernel_init=normal_init(0.02, ("embed", "mlp")),
                           bias_init=zeros_init(("mlp",)), name="fc")(x_BxTxE)
        h_BxTxM = nn.gelu(h_BxTxM, approximate=True)
        out_BxTxE = nn.Dense(cfg.embed_dim, use_bias=cfg.use_bias, dtype=cfg.compute_dtype,
                             kernel_init=normal_init(0.02 / math.sqrt(2 * cfg.num_layers),
                                                     ("mlp", "embed")),
                             bias_init=zeros_init(("embed",)), name="proj")(h_BxTxM)
        return nn.Dropout(cfg.dropout)(out_BxTxE, deterministic=not train)


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""
    config: TransformerConfig
    decode: bool = False

    @nn.compact
    def __call__(self, x_BxTxE, positions_BxT, mask, train: bool, input_mask=None):
        cfg = self.config
        x_BxTxE = x_BxTxE + SelfAttention(cfg, self.decode, name="attn")(
            layer_norm(cfg, "ln_1")(x_BxTxE), positions_BxT, mask, train, input_mask)
        x_BxTxE = x_BxTxE + MLP(cfg, name="mlp")(layer_norm(cfg, "ln_2")(x_BxTxE), train)
        return x_BxTxE
