"""Decoder-only GPT (Flax Linen): token (+ learned position) embeddings, the shared pre-LN
blocks of ``blocks.py``, a final LayerNorm and a tied (or separate) output head.

Logical axis names of its own parameters (the blocks' are listed in ``transformer.py``):
  wte/embedding ('vocab','embed')      wpe/embedding ('length','embed')
  ln_f scale/bias ('embed',)           lm_head kernel ('embed','vocab'), bias ('vocab',)

rng names: "params" for init, "dropout" for dropout (only used when train=True).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.errors import UserError
from pretrainx.models.blocks import run_stack, stack
from pretrainx.models.transformer import (TransformerConfig, attention_mask, embed, init_std,
                                          norm, normal_init, zeros_init)

class GPT(nn.Module):
    """Decoder-only transformer. Returns logits B,T,V (float32, or the compute dtype with
    ``config.logits_dtype="compute"``), or with ``features_only`` the
    final hidden states B,T,E (after ln_f; the output head is then neither run nor created), the
    input of a reward, value or classifier head.

    ``config.attention_kind`` picks causal / bidirectional / prefix attention (a prefix comes as
    ``prefix_length`` (B,) or ``prefix_mask`` (B,T)); ``segment_ids`` keep packed documents
    apart; ``input_mask`` (B,T) hides padding keys.

    decode=True: KV-cache mode ("cache" collection, call with mutable=["cache"]). Each call
    appends its T tokens to the cache; positions default to cache_index + arange(T);
    ``input_mask`` marks the real tokens of a left-padded prompt. One document per row
    (``pretrainx.models.decoding`` drives it); a "prefix" model attends bidirectionally within each
    call's tokens, so the prompt it is given first is its prefix.
    """
    config: TransformerConfig
    decode: bool = False

    @nn.compact
    def __call__(self, tokens_BxT, *, positions=None, segment_ids=None, prefix_length=None,
                 prefix_mask=None, input_mask=None, train: bool = False,
                 features_only: bool = False):
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

        if self.decode:
            if cfg.attention_kind == "bidirectional":
                raise UserError("KV-cache decoding needs a causal or prefix model; this model's "
                                "attention_kind is 'bidirectional'")
            mask = None     # the cache builds its own (real tokens; causal, or prefix = prompt)
        else:
            mask = attention_mask(cfg.attention_kind, T, segment_ids=segment_ids,
                                  prefix_length=prefix_length, prefix_mask=prefix_mask,
                                  input_mask=input_mask)

        wte = embed(cfg, cfg.vocab_size, init_std(cfg, "embed"), ("vocab", "embed"), "wte")
        x_BxTxE = wte(tokens_BxT)
        if not cfg.rope:
            x_BxTxE = x_BxTxE + embed(cfg, cfg.max_len, 0.02, ("length", "embed"), "wpe")(positions)
        x_BxTxE = nn.Dropout(cfg.dropout)(x_BxTxE, deterministic=not train)

        x_BxTxE = run_stack(stack(cfg, cfg.num_layers, decode=self.decode), x_BxTxE, positions,
                            mask, train, input_mask if self.decode else None)
        x_BxTxE = norm(cfg, "ln_f")(x_BxTxE)
        if features_only:
            return x_BxTxE.astype(jnp.float32)

        if cfg.tie_embeddings:
            logits_BxTxV = wte.attend(x_BxTxE)
        else:
            logits_BxTxV = nn.Dense(cfg.vocab_size, use_bias=cfg.use_bias, dtype=cfg.compute_dtype,
                                    dot_general=cfg.dense_dot_general,
                                    kernel_init=normal_init(0.02, ("embed", "vocab")),
                                    bias_init=zeros_init(("vocab",)), name="lm_head")(x_BxTxE)
        return cfg.output_logits(logits_BxTxV)


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


@dataclasses.dataclass(frozen=True)
class GPTDecoder:
    """The GPT's KV cache behind ``pretrainx.models.decoding.Decoder`` (hashable: a jit static arg)."""
    config: TransformerConfig

    @property
    def max_len(self) -> int:
        return self.config.max_len

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    def init_cache(self, params, batch_size: int):
        model = GPT(self.config, decode=True)
        abstract = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((batch_size, 1), jnp.int32))
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), nn.unbox(abstract["cache"]))

    def step(self, params, cache, tokens_BxT, positions_BxT, input_mask_BxT):
        logits, mutated = GPT(self.config, decode=True).apply(
            {"params": params, "cache": cache}, tokens_BxT, positions=positions_BxT,
            input_mask=input_mask_BxT, mutable=["cache"])
        return logits, mutated["cache"]

    def forward(self, params, tokens_BxT, positions_BxT, input_mask_BxT, prefix_length_B):
        """The plain forward pass (no cache): the sliding window past ``max_len``."""
        prefix = prefix_length_B if self.config.attention_kind == "prefix" else None
        return GPT(self.config).apply({"params": params}, tokens_BxT, positions=positions_BxT,
                                      input_mask=input_mask_BxT, prefix_length=prefix)


class GPTScalar(nn.Module):
    """A GPT trunk ("backbone", no output head) and a linear head to one scalar per position: a
    reward model (read at a sequence's last real token) or a value function (read per token).
    The head starts at zero, so every score starts at 0 (a Bradley–Terry loss of exactly log 2)."""
    config: TransformerConfig

    @nn.compact
    def __call__(self, tokens_BxT, *, train: bool = False):
        features_BxTxE = GPT(self.config, name="backbone")(tokens_BxT, train=train,
                                                           features_only=True)
        head = nn.Dense(1, dtype=jnp.float32, kernel_init=zeros_init(("embed", None)),
                        bias_init=zeros_init((None,)), name="head")
        return head(features_BxTxE)[..., 0]
