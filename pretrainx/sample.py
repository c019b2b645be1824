"""Autoregressive generation with the GPT KV cache: one prefill call, then a scan of 1-token steps."""
from __future__ import annotations

import functools
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.models.gpt import GPT
from pretrainx.models.transformer import TransformerConfig


def _sample(logits_BxV, key, temperature, *, greedy: bool, top_k: int | None, vocab: int):
    if vocab < logits_BxV.shape[-1]:   # padded output rows (e.g. 50304 for 50257) never win
        logits_BxV = jnp.where(jnp.arange(logits_BxV.shape[-1]) < vocab, logits_BxV, -jnp.inf)
    if greedy:
        return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    logits_BxV = logits_BxV.astype(jnp.float32) / temperature
    if top_k is not None:
        kth_Bx1 = jax.lax.top_k(logits_BxV, top_k)[0][:, -1:]
        logits_BxV = jnp.where(logits_BxV < kth_Bx1, -jnp.inf, logits_BxV)
    return jax.random.categorical(key, logits_BxV, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("cfg", "max_new_tokens", "top_k", "greedy", "vocab"))
def _generate(cfg, params, prompt_BxP, rng, temperature, *, max_new_tokens, top_k, greedy, vocab):
    model = GPT(cfg, decode=True)
    B = prompt_BxP.shape[0]
    abstract = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((B, 1), jnp.int32))
    cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), nn.unbox(abstract["cache"]))
    sample = functools.partial(_sample, temperature=temperature, greedy=greedy, top_k=top_k,
                               vocab=vocab)

    logits_BxPxV, mutated = model.apply({"params": params, "cache": cache}, prompt_BxP,
                                        mutable=["cache"])
    first_B = sample(logits_BxPxV[:, -1], jax.random.fold_in(rng, 0))

    def step(carry, i):
        cache, tok_B = carry
        logits_Bx1xV, mutated = model.apply({"params": params, "cache": cache}, tok_B[:, None],
                                            mutable=["cache"])
        nxt_B = sample(logits_Bx1xV[:, -1], jax.random.fold_in(rng, i))
        return (mutated["cache"], nxt_B), nxt_B

    _, rest_NxB = jax.lax.scan(step, (mutated["cache"], first_B), jnp.arange(1, max_new_tokens))
    new_BxN = jnp.concatenate([first_B[:, None], rest_NxB.T], axis=1)
    return jnp.concatenate([prompt_BxP, new_BxN], axis=1)


def generate(model_config: TransformerConfig, params, prompt_ids, max_new_tokens: int, *,
             rng: jax.Array, temperature: float = 1.0, top_k: int | None = None,
             vocab_size: int | None = None) -> np.ndarray:
    """Sample max_new_tokens after prompt_ids (1-D, or B x P with equal lengths).

    params: the model's "params" tree, boxed or unboxed (a {"params": ...} dict also works).
    temperature == 0 is greedy argmax; top_k keeps the k largest logits; ``vocab_size`` (the
    tokenizer's, when the model's output is padded beyond it) bounds the ids drawn. Returns int32
    numpy ids of shape (B, P + max_new_tokens) (B = 1 for a 1-D prompt), prompt included.
    Compiled once per (config, batch, prompt length, max_new_tokens, top_k, greedy).
    """
    cfg = model_config
    prompt = np.asarray(prompt_ids, dtype=np.int32)
    if prompt.ndim == 1:
        prompt = prompt[None]
    if prompt.ndim != 2 or prompt.shape[1] == 0:
        raise ValueError(f"prompt_ids must be a non-empty 1-D or B x P array, got shape {prompt.shape}")
    P = prompt.shape[1]
    if P + max_new_tokens > cfg.max_len:
        raise ValueError(f"prompt length {P} + max_new_tokens {max_new_tokens} = {P + max_new_tokens} "
                         f"exceeds the model's max_len {cfg.max_len} (the KV cache has max_len slots)")
    if max_new_tokens <= 0:
        return prompt
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    vocab = cfg.vocab_size if vocab_size is None else min(int(vocab_size), cfg.vocab_size)
    if top_k is not None and not 1 <= top_k <= vocab:
        raise ValueError(f"top_k must be in [1, {vocab}], got {top_k}")
    params = nn.unbox(params)
    if isinstance(params, Mapping) and set(params) == {"params"}:  # a whole variables dict
        params = params["params"]
    out = _generate(cfg, params, jnp.asarray(prompt), rng, jnp.float32(max(temperature, 1e-6)),
                    max_new_tokens=int(max_new_tokens), top_k=top_k, greedy=temperature == 0,
                    vocab=vocab)
    return np.asarray(out)
