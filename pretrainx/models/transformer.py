"""The transformer family's shared pieces: the config, attention masks, initialisers and norms.

The layers are in ``attention.py`` (self / cross attention, KV cache, T5's relative position
bias) and ``blocks.py`` (MLP, the pre-LN / post-LN block); the architectures are built from them:
``gpt.py`` (decoder-only), ``bert.py`` (encoder), ``t5.py`` (encoder-decoder).

Shapes use suffixes: B batch, T query length, S key length, H heads, D head dim,
E embed dim, M mlp hidden, V vocab.

Every parameter is created boxed by ``nn.with_logical_partitioning`` with these logical axis
names (map them to mesh axes with ``nn.logical_to_mesh_sharding``; a name the rules do not list
is replicated):

  attn q,k,v kernel ('embed','heads','kv'), bias ('heads','kv')  (k, v: num_kv_heads heads)
  attn out kernel ('heads','kv','embed'), bias ('embed',)
  mlp fc / gate kernel ('embed','mlp'), bias ('mlp',); mlp proj kernel ('mlp','embed'), bias ('embed',)
  LayerNorm / RMSNorm scale, bias ('embed',)
  relative position bias ('relpos_buckets','heads')  (T5)

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
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from pretrainx.errors import UserError
from pretrainx.models.dense import DENSE_GRADS, dense_dot_general

IMPLEMENTATIONS = ("auto", "xla", "cudnn")
ATTENTION_KINDS = ("causal", "bidirectional", "prefix")
ACTIVATIONS = ("gelu_tanh", "gelu", "relu", "silu", "relu2")
ROPE_SCALINGS = ("none", "llama3")
NORMS = ("layernorm", "rmsnorm")
NORM_POSITIONS = ("pre", "post")
INIT_STYLES = ("gpt", "bert", "t5")
EMBED_LOOKUPS = ("auto", "gather", "onehot", "matmul_grad")
# How "auto" looks rows up (see lookup_path). A gather's gradient is a scatter-add, and on a
# GPU many tokens adding into the same rows serialise on atomics. Measured on an H200
# (2026-11-30): the scatter took 34 of shakespeare_char's 43 ms per step (65 characters, 256
# positions; one-hot: 8.3 ms) and 29 of GPT-2 124M's 110 ms (50,304 tokens; one-hot: 79 ms,
# +3 GiB peak memory for the one-hot array). A one-hot matmul's gradient is a matmul. On a CPU
# the gather is as fast for small tables and faster for large ones.
ONEHOT_MAX_ROWS = 4096             # any backend: a table this small is looked up by one-hot
ONEHOT_MAX_BYTES_GPU = 4 * 2**30   # on a GPU, any table while the one-hot array fits this


def attention_mask(kind: str, length: int, *, segment_ids=None, prefix_length=None,
                   prefix_mask=None, input_mask=None):
    """The (B or 1, 1, T, T) boolean mask of attention ``kind``, or None for plain causal
    attention (then the fused kernels' own causal path is used).

    ``prefix_length`` (B,) or ``prefix_mask`` (B, T, True on prefix tokens; several prefixes in a
    packed row are fine with ``segment_ids``) give the "prefix" kind its prefix.
    """
    if kind not in ATTENTION_KINDS:
        raise UserError(f"attention_kind must be one of {ATTENTION_KINDS}, got {kind!r}")
    has_prefix = prefix_length is not None or prefix_mask is not None
    if kind == "prefix" and not has_prefix:
        raise UserError("attention_kind 'prefix' needs a prefix_length (B,) or prefix_mask (B, T) "
                        "batch key")
    if kind != "prefix" and has_prefix:
        raise UserError(f"a prefix was given but attention_kind is {kind!r}; use 'prefix'")
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


def cross_attention_mask(query_segment_ids=None, key_segment_ids=None, key_mask=None):
    """(B, 1, T, S) mask of decoder queries over encoder keys: keys that are real
    (``key_mask``) and of the same packed example (segment ids); None when nothing is hidden."""
    mask = None
    if key_mask is not None:
        mask = key_mask.astype(bool)[:, None, None, :]
    if query_segment_ids is not None and key_segment_ids is not None:
        same = (query_segment_ids[:, :, None] == key_segment_ids[:, None, :])[:, None]
        mask = same if mask is None else mask & same
    return mask


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
    # --- what tells GPT-2, BERT and T5 apart (the defaults are GPT-2's) -----------------------
    head_size: int = 0                # per-head width; 0: embed_dim // num_heads (T5 v1.1: 64)
    mlp_dim: int = 0                  # MLP hidden width; 0: mlp_ratio * embed_dim
    mlp_activation: str = "gelu_tanh"  # "gelu_tanh" (GPT-2) | "gelu" (BERT, erf) | "relu" (T5 1.0)
                                       # | "silu" | "relu2" (ReLU squared, Primer)
    mlp_gated: bool = False           # act(x W) * (x V): T5 v1.1's gated-GELU (Shazeer 2020)
    norm: str = "layernorm"           # "layernorm" | "rmsnorm" (T5: scale only, no mean)
    norm_eps: float = 1e-5            # GPT-2 1e-5, BERT 1e-12, T5 1e-6
    norm_position: str = "pre"        # "pre" (GPT-2, T5) | "post" (BERT as published)
    scaled_attention: bool = True     # 1/sqrt(D) on the logits; T5 folds it into its init
    init_style: str = "gpt"           # "gpt": N(0.02), residual outs /sqrt(2L) | "bert" | "t5"
    type_vocab_size: int = 0          # BERT's token-type (segment A/B) embeddings; 0: none
    relative_buckets: int = 0         # T5's relative position buckets (32); 0: none
    relative_max_distance: int = 128  # T5: distances past this share the last bucket
    num_decoder_layers: int = 0       # encoder-decoder: decoder depth; 0: num_layers
    tied_output_scale: bool = True    # T5 with a tied head: d_model^-0.5 on the decoder output
                                      # first (v1.0); False: not (v1.1 saved by transformers 5)
    embed_lookup: str = "auto"        # see EMBED_LOOKUPS and lookup_path
    dense_grads: str = "auto"         # the dense layers' kernel gradients: see models/dense.py
    # --- the Llama family (Llama 2/3, Qwen2): GQA, SwiGLU, RMSNorm, scaled RoPE -----------------
    num_kv_heads: int = 0             # key/value heads; 0: num_heads (MHA); fewer: grouped-query
                                      # attention (GQA), 1: multi-query; must divide num_heads
    qkv_bias: bool = False            # biases on q/k/v even when use_bias is False (Qwen2)
    rope_theta: float = 10000.0       # RoPE base (Llama 3: 500,000; Qwen2: 1,000,000)
    rope_scaling: str = "none"        # "none" | "llama3": Llama 3.1's frequency scaling below
    rope_scaling_factor: float = 8.0  # llama3: long wavelengths are divided by this
    rope_low_freq_factor: float = 1.0   # llama3: wavelengths > original_max_len / this are scaled
    rope_high_freq_factor: float = 4.0  # llama3: wavelengths < original_max_len / this are kept
    rope_original_max_len: int = 8192   # llama3: the context length the model was trained at
    # The logits' dtype: "float32", or "compute" (bf16 under bfloat16 compute, as nanoGPT's
    # autocast gives them; the losses upcast inside their reductions, so no float32 B x T x V
    # array is written). Only by name until a GPU measures it.
    logits_dtype: str = "float32"
    # --- modern GPT options (modded-nanogpt's speedrun; all off in GPT-2) ----------------------
    qk_norm: bool = False             # RMSNorm (a learned scale per head dim) on q and k per head,
                                      # before RoPE: bounded attention logits at a higher LR
    zero_init_proj: bool = False      # attention out and MLP proj kernels start at 0: each block
                                      # starts as the identity (its residual branch adds nothing)

    @property
    def dense_dot_general(self):
        """The dense layers' ``dot_general`` (None: flax's default); see models/dense.py."""
        return dense_dot_general(self.dense_grads)

    def __post_init__(self):
        if not self.head_size and self.embed_dim % self.num_heads:
            raise UserError(f"embed_dim {self.embed_dim} not divisible by num_heads {self.num_heads}")
        choices = {"attention": IMPLEMENTATIONS, "attention_kind": ATTENTION_KINDS,
                   "mlp_activation": ACTIVATIONS, "norm": NORMS, "norm_position": NORM_POSITIONS,
                   "init_style": INIT_STYLES, "embed_lookup": EMBED_LOOKUPS,
                   "dense_grads": DENSE_GRADS, "dtype": ("float32", "bfloat16"),
                   "logits_dtype": ("float32", "compute")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserError(f"{name} must be one of {list(allowed)}, got "
                                f"{getattr(self, name)!r}")
        if not 0.0 <= self.attention_dropout < 1.0:
            raise UserError(f"attention_dropout must be in [0, 1), got {self.attention_dropout}")
        if self.rope and self.head_dim % 2:
            raise UserError("rope needs an even head dim")
        if self.kv_heads < 1 or self.num_heads % self.kv_heads:
            raise UserError(f"num_kv_heads {self.num_kv_heads} must divide num_heads {self.num_heads}")
        if self.rope_scaling not in ROPE_SCALINGS:
            raise UserError(f"rope_scaling must be one of {list(ROPE_SCALINGS)}, got "
                            f"{self.rope_scaling!r}")

    @property
    def head_dim(self) -> int:
        return self.head_size or self.embed_dim // self.num_heads

    @property
    def kv_heads(self) -> int:
        """Key/value heads (``num_kv_heads``, or ``num_heads`` when 0)."""
        return self.num_kv_heads or self.num_heads

    @property
    def hidden_dim(self) -> int:
        """The MLP's inner width."""
        return self.mlp_dim or self.mlp_ratio * self.embed_dim

    @property
    def decoder_layers(self) -> int:
        return self.num_decoder_layers or self.num_layers

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    def output_logits(self, logits):
        """Logits as the model returns them (``logits_dtype``)."""
        return logits.astype(jnp.float32 if self.logits_dtype == "float32" else self.compute_dtype)

    @classmethod
    def from_config(cls, model_config) -> "TransformerConfig":
        """Build from a ConfigDict / mapping; unknown keys (e.g. "name") are ignored."""
        d = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def lookup_path(lookup: str, rows: int, num_ids: int, itemsize: int, backend: str) -> str:
    """How an ``Embed`` of ``rows`` looks ``num_ids`` ids up: "gather" (its gradient a
    scatter-add), "onehot" (a one-hot matmul, its gradient a matmul) or "matmul_grad" (a gather
    forward, the one-hot matmul only in the gradient: saves the forward product of a large table;
    only by name until a GPU measures it)."""
    if lookup != "auto":
        return lookup
    if rows <= ONEHOT_MAX_ROWS or (backend == "gpu"
                                   and rows * num_ids * itemsize <= ONEHOT_MAX_BYTES_GPU):
        return "onehot"
    return "gather"


@jax.custom_vjp
def take_rows_matmul_grad(table_VxE, ids):
    """``table[ids]`` whose gradient is ``one_hot(ids)^T @ g`` (a matmul, float32 accumulation)
    instead of a scatter-add."""
    return jnp.take(table_VxE, ids, axis=0)


def _take_rows_fwd(table_VxE, ids):
    # The residual carries the table only for its shape and dtype (XLA drops the unused data).
    return jnp.take(table_VxE, ids, axis=0), (ids, table_VxE)


def _take_rows_bwd(residuals, g):
    ids, table_VxE = residuals
    V, E = table_VxE.shape
    onehot_NxV = jax.nn.one_hot(ids.reshape(-1), V, dtype=g.dtype)
    d_table = jax.lax.dot_general(onehot_NxV, g.reshape(-1, E), (((0,), (0,)), ((), ())),
                                  precision=jax.lax.Precision.HIGHEST,
                                  preferred_element_type=jnp.float32)
    return d_table.astype(table_VxE.dtype), None


take_rows_matmul_grad.defvjp(_take_rows_fwd, _take_rows_bwd)


class Embed(nn.Embed):
    """``nn.Embed`` (same parameter, same values out) whose lookup path is picked by
    :func:`lookup_path`: the gather, a one-hot matmul (gradient a matmul instead of a scatter-add;
    ids outside the table give zeros, not NaN) or a gather with a matmul gradient."""
    lookup: str = "auto"

    def __call__(self, inputs):
        rows = self.num_embeddings
        (table,) = self.promote_dtype(self.embedding, dtype=self.dtype, inexact=False)
        path = lookup_path(self.lookup, rows, int(inputs.size), table.dtype.itemsize,
                           jax.default_backend())
        if path == "gather":
            return super().__call__(inputs)
        if not jnp.issubdtype(inputs.dtype, jnp.integer):
            raise UserError(f"embedding ids must be integers, got {inputs.dtype}")
        if path == "matmul_grad":
            return take_rows_matmul_grad(table, inputs)
        onehot = jax.nn.one_hot(inputs, rows, dtype=table.dtype)
        # HIGHEST: a float32 product on a GPU may otherwise run in TF32 and round the rows.
        return jnp.dot(onehot, table, precision=jax.lax.Precision.HIGHEST)


def embed(cfg: TransformerConfig, rows: int, std: float, axes: tuple, name=None) -> Embed:
    """A table of ``rows`` x ``cfg.embed_dim`` in the model's compute dtype and lookup mode."""
    return Embed(rows, cfg.embed_dim, dtype=cfg.compute_dtype, lookup=cfg.embed_lookup,
                 embedding_init=normal_init(std, axes), name=name)


def normal_init(std: float, names: tuple):
    return nn.with_logical_partitioning(nn.initializers.normal(stddev=std), names)


def zeros_init(names: tuple):
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


def ones_init(names: tuple):
    return nn.with_logical_partitioning(nn.initializers.ones_init(), names)


def init_std(cfg: TransformerConfig, what: str) -> float:
    """The initial standard deviation of a weight, by the architecture's recipe.

    "gpt": N(0, 0.02) everywhere, the residual outputs ("out", "mlp_out") scaled by
    1/sqrt(2 * layers) (GPT-2 paper, section 2.3). "bert": N(0, 0.02) everywhere (Devlin et al.'s
    ``initializer_range``). "t5": Mesh TensorFlow's, as Hugging Face's ``T5PreTrainedModel``: the
    1/sqrt(D) of attention folded into the query init, embeddings N(0, 1).
    """
    if cfg.init_style == "t5":
        E, D, H, M = cfg.embed_dim, cfg.head_dim, cfg.num_heads, cfg.hidden_dim
        return {"q": (E * D) ** -0.5, "kv": E ** -0.5, "out": (H * D) ** -0.5,
                "mlp_in": E ** -0.5, "mlp_out": M ** -0.5, "embed": 1.0, "relpos": E ** -0.5,
                "head": 1.0}[what]
    if cfg.init_style == "gpt" and what in ("out", "mlp_out"):
        return 0.02 / math.sqrt(2 * cfg.num_layers)
    return 0.02


def residual_out_init(cfg: TransformerConfig, what: str, names: tuple):
    """The kernel init of a residual branch's output (attention ``out``, MLP ``proj``): zeros
    with ``zero_init_proj``, else the architecture's normal init."""
    if cfg.zero_init_proj:
        return zeros_init(names)
    return normal_init(init_std(cfg, what), names)


def norm(cfg: TransformerConfig, name: str) -> nn.Module:
    """The architecture's normalisation layer: LayerNorm (GPT-2, BERT) or RMSNorm (T5: a scale,
    no mean subtraction, no bias), epsilon ``cfg.norm_eps``."""
    if cfg.norm == "rmsnorm":
        return nn.RMSNorm(epsilon=cfg.norm_eps, dtype=cfg.compute_dtype,
                          scale_init=ones_init(("embed",)), name=name)
    return nn.LayerNorm(epsilon=cfg.norm_eps, dtype=cfg.compute_dtype, use_bias=cfg.use_bias,
                        scale_init=ones_init(("embed",)), bias_init=zeros_init(("embed",)), name=name)
