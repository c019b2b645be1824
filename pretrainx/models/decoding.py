"""Autoregressive decoding for any model with a KV cache: one prefill call on the prompts, then a
scan of one-token steps. Pure and jittable, so it runs inside a train step (RL rollouts in
``Objective.prepare``) as well as in ``pretrainx sample``.

Prompts of different lengths come left-padded to one length P with a mask of their real tokens:
each row's positions count from its first real token and its padding is never attended to, so a
row decodes exactly as it would alone. Rows stop at ``eos_id``: after it they hold ``pad_id`` with
log-probability 0. Sampling is per row (row b draws with its own key), so a row's tokens do not
depend on the rows beside it either.

Past the context length the model sees the last ``max_len`` tokens only, as nanoGPT crops its
context: the KV cache serves the tokens that fit, then each step re-encodes the sliding window
with the model's plain forward pass (positions restart at 0 in the window, exactly what a loop
that crops the text and runs the model would compute, for learned and rotary positions alike).

A model plugs in through two functions, and a third for the sliding window (see
:class:`Decoder`); ``models/gpt.py`` provides ``GPTDecoder``.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.errors import UserError

log = logging.getLogger(__name__)


class Decoder(Protocol):
    max_len: int              # cache slots: the context the model was trained on
    vocab_size: int           # rows of the output layer

    def init_cache(self, params, batch_size: int) -> Any: ...

    def step(self, params, cache, tokens_BxT, positions_BxT, input_mask_BxT):
        """Append T tokens to the cache; returns (logits B x T x V, new cache)."""

    # Optional: a decoder that has it continues past ``max_len`` with a sliding window.
    # def forward(self, params, tokens_BxT, positions_BxT, input_mask_BxT, prefix_length_B):
    #     """The plain (cache-free) forward pass: logits B x T x V."""


@flax.struct.dataclass
class Decoded:
    tokens: jax.Array         # B x N int32: the new tokens (pad_id after a row's EOS)
    log_probs: jax.Array      # B x N float32: log p(token | everything before) under the model
                              # (temperature 1, whole vocabulary); 0 after a row's EOS
    lengths: jax.Array        # B int32: new tokens up to and including EOS (N when none)


def _pick(logits_V, key, *, temperature, greedy: bool, top_k: int | None):
    if greedy:
        return jnp.argmax(logits_V).astype(jnp.int32)
    scaled = logits_V / temperature
    if top_k is not None:
        kth = jax.lax.top_k(scaled, top_k)[0][-1]
        scaled = jnp.where(scaled < kth, -jnp.inf, scaled)
    return jax.random.categorical(key, scaled).astype(jnp.int32)


def row_keys(rng, batch_size: int):
    """One key per row: ``rng`` itself when it already holds B keys, else split from it."""
    if rng.ndim == (1 if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key) else 2):
        return rng
    return jax.random.split(rng, batch_size)


def _chooser(keys_B, *, temperature, greedy: bool, top_k, vocab_size, eos_id, pad_id):
    """choose(logits B x V, step i, done B) -> (token B, its log-probability B, done B)."""
    pick = jax.vmap(functools.partial(_pick, temperature=temperature, greedy=greedy, top_k=top_k))

    def choose(logits_BxV, i, done_B):
        logits_BxV = logits_BxV.astype(jnp.float32)
        if vocab_size is not None and vocab_size < logits_BxV.shape[-1]:
            logits_BxV = jnp.where(jnp.arange(logits_BxV.shape[-1]) < vocab_size, logits_BxV,
                                   -jnp.inf)
        tok_B = pick(logits_BxV, jax.vmap(jax.random.fold_in, (0, None))(keys_B, i))
        logp_B = jnp.take_along_axis(jax.nn.log_softmax(logits_BxV), tok_B[:, None], -1)[:, 0]
        tok_B = jnp.where(done_B, pad_id, tok_B)
        logp_B = jnp.where(done_B, 0.0, logp_B)
        now_done = done_B | (tok_B == eos_id) if eos_id is not None else done_B
        return tok_B, logp_B, now_done
    return choose


def _decode_cached(decoder: Decoder, params, prompt_BxP, mask_BxP, choose, steps: int):
    """The KV-cache fast path: a prefill on the prompt, then ``steps - 1`` one-token steps.
    Returns (tokens B x steps, log-probs B x steps, done B)."""
    B = prompt_BxP.shape[0]
    positions_BxP = jnp.maximum(jnp.cumsum(mask_BxP, axis=1) - 1, 0).astype(jnp.int32)
    cache = decoder.init_cache(params, B)
    logits_BxPxV, cache = decoder.step(params, cache, prompt_BxP, positions_BxP, mask_BxP)
    first = choose(logits_BxPxV[:, -1], 0, jnp.zeros((B,), bool))
    next_pos_B = positions_BxP[:, -1] + 1

    def body(carry, i):
        cache, (tok_B, _, done_B) = carry
        logits_Bx1xV, cache = decoder.step(params, cache, tok_B[:, None],
                                           (next_pos_B + i - 1)[:, None], jnp.ones((B, 1), bool))
        out = choose(logits_Bx1xV[:, 0], i, done_B)
        return (cache, out), out[:2]

    (_, last), (rest_tok, rest_logp) = jax.lax.scan(body, (cache, first), jnp.arange(1, steps))
    return (jnp.concatenate([first[0][:, None], rest_tok.T], axis=1),
            jnp.concatenate([first[1][:, None], rest_logp.T], axis=1), last[2])


def _decode_windowed(decoder: Decoder, params, window_BxL, mask_BxL, prefix_B, done_B, choose,
                     *, first_step: int, steps: int):
    """nanoGPT's cropped context past the cache: each step runs the model's plain forward pass
    on the last ``max_len`` tokens (positions restart at 0 in the window, as they do for a model
    run on the cropped text), then slides the window one token. ``prefix_B``: how many of the
    window's columns are prompt, the prefix of a prefix-LM (it shrinks as the prompt slides out).
    Returns (tokens B x steps, log-probs B x steps)."""
    def body(carry, i):
        window_BxL, mask_BxL, prefix_B, done_B = carry
        positions_BxL = jnp.maximum(jnp.cumsum(mask_BxL, axis=1) - 1, 0).astype(jnp.int32)
        logits_BxLxV = decoder.forward(params, window_BxL, positions_BxL, mask_BxL, prefix_B)
        tok_B, logp_B, done_B = choose(logits_BxLxV[:, -1], i, done_B)
        window_BxL = jnp.concatenate([window_BxL[:, 1:], tok_B[:, None]], axis=1)
        mask_BxL = jnp.concatenate([mask_BxL[:, 1:], jnp.ones_like(mask_BxL[:, :1])], axis=1)
        return (window_BxL, mask_BxL, jnp.maximum(prefix_B - 1, 0), done_B), (tok_B, logp_B)

    _, (tok, logp) = jax.lax.scan(body, (window_BxL, mask_BxL, prefix_B, done_B),
                                  jnp.arange(first_step, first_step + steps))
    return tok.T, logp.T


def decode(decoder: Decoder, params, prompt_BxP, prompt_mask_BxP, rng, *, max_new_tokens: int,
           temperature=1.0, greedy: bool = False, top_k: int | None = None,
           vocab_size: int | None = None, eos_id: int | None = None, pad_id: int = 0) -> Decoded:
    """Sample (or, ``greedy``, take the argmax of) ``max_new_tokens`` after each left-padded
    prompt. ``rng``: a key, or B keys (row b uses its own). ``vocab_size`` bounds the ids drawn
    when the model's output is padded beyond the tokenizer's.

    Past the context (prompt + new tokens > ``max_len``) the model sees only the last ``max_len``
    tokens, as nanoGPT crops its context: a longer prompt is cropped, the KV cache serves the
    tokens that fit and a sliding window re-encoded each step (``Decoder.forward``) the rest."""
    B = prompt_BxP.shape[0]
    L = decoder.max_len
    if prompt_BxP.shape[1] > L:    # tolerated, as nanoGPT does, but said
        log.warning("the prompt is %d tokens, the model's context %d: it sees the last %d",
                    prompt_BxP.shape[1], L, L)
    prompt_BxP, mask_BxP = prompt_BxP[:, -L:], prompt_mask_BxP[:, -L:].astype(bool)
    P = prompt_BxP.shape[1]
    cached = min(max_new_tokens, L - P + 1)  # the last of them fills the cache's last slot
    if cached < max_new_tokens and not hasattr(decoder, "forward"):
        raise UserError(f"prompt length {P} + max_new_tokens {max_new_tokens} exceeds the "
                        f"model's max_len {L} + 1, and {type(decoder).__name__} cannot slide its "
                        f"context window: ask for at most {L - P + 1} new tokens")
    choose = _chooser(row_keys(rng, B), temperature=temperature, greedy=greedy, top_k=top_k,
                      vocab_size=vocab_size, eos_id=eos_id, pad_id=pad_id)
    tokens, log_probs, done_B = _decode_cached(decoder, params, prompt_BxP, mask_BxP, choose, cached)
    if cached < max_new_tokens:
        window = jnp.concatenate([prompt_BxP, tokens], axis=1)[:, -L:]
        mask = jnp.concatenate([mask_BxP, jnp.ones(tokens.shape, bool)], axis=1)[:, -L:]
        prefix_B = jnp.full((B,), P - 1, jnp.int32)    # one prompt column slid out
        more_tok, more_logp = _decode_windowed(decoder, params, window, mask, prefix_B, done_B,
                                               choose, first_step=cached,
                                               steps=max_new_tokens - cached)
        tokens = jnp.concatenate([tokens, more_tok], axis=1)
        log_probs = jnp.concatenate([log_probs, more_logp], axis=1)
    if eos_id is None:
        lengths = jnp.full((B,), max_new_tokens, jnp.int32)
    else:
        is_eos = tokens == eos_id
        lengths = jnp.where(is_eos.any(1), jnp.argmax(is_eos, axis=1) + 1, max_new_tokens)
    return Decoded(tokens=tokens, log_probs=log_probs, lengths=lengths.astype(jnp.int32))


def left_pad(prompts: list, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token lists -> (B x P int32 ids, B x P bool mask), left-padded to the longest."""
    length = max(len(p) for p in prompts)
    ids = np.full((len(prompts), length), pad_id, np.int32)
    mask = np.zeros((len(prompts), length), bool)
    for b, p in enumerate(prompts):
        if len(p):
            ids[b, length - len(p):] = p
            mask[b, length - len(p):] = True
    return ids, mask


@functools.partial(jax.jit, static_argnames=("decoder", "max_new_tokens", "top_k", "greedy",
                                             "vocab_size", "eos_id", "pad_id"))
def _decode_jit(decoder, params, prompt, mask, rng, temperature, *, max_new_tokens, top_k, greedy,
                vocab_size, eos_id, pad_id):
    return decode(decoder, params, prompt, mask, rng, max_new_tokens=max_new_tokens,
                  temperature=temperature, greedy=greedy, top_k=top_k, vocab_size=vocab_size,
                  eos_id=eos_id, pad_id=pad_id)


def generate(decoder: Decoder, params, prompt_BxP, max_new_tokens: int, *, rng: jax.Array,
             temperature: float = 1.0, top_k: int | None = None, vocab_size: int | None = None,
             prompt_mask=None, eos_id: int | None = None) -> Decoded:
    """The checked, compiled :func:`decode` every host-side caller goes through (``sample``,
    the evaluators, best-of-N, ``pretrainx pairs``): B x P left-padded prompts (``prompt_mask``
    marks their real tokens; all real when None). temperature == 0 is greedy; params may be
    boxed or a {"params": ...} dict. Compiled once per (decoder, shapes, options)."""
    prompt = np.asarray(prompt_BxP, dtype=np.int32)
    if prompt.ndim != 2 or prompt.shape[1] == 0:
        raise UserError(f"prompt_ids must be a non-empty 1-D or B x P array, got shape {prompt.shape}")
    if max_new_tokens <= 0:
        raise UserError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise UserError(f"temperature must be >= 0, got {temperature}")
    vocab = decoder.vocab_size if vocab_size is None else min(int(vocab_size), decoder.vocab_size)
    if top_k is not None and not 1 <= top_k <= vocab:
        raise UserError(f"top_k must be in [1, {vocab}], got {top_k}")
    params = nn.unbox(params)
    if isinstance(params, Mapping) and set(params) == {"params"}:  # a whole variables dict
        params = params["params"]
    mask = np.ones(prompt.shape, bool) if prompt_mask is None else np.asarray(prompt_mask, bool)
    return _decode_jit(decoder, params, jnp.asarray(prompt), jnp.asarray(mask), rng,
                       jnp.float32(max(temperature, 1e-6)), max_new_tokens=int(max_new_tokens),
                       top_k=top_k, greedy=temperature == 0, vocab_size=vocab, eos_id=eos_id,
                       pad_id=0)


def continue_prompt(decoder: Decoder, params, prompt_ids, max_new_tokens: int, *,
                    rng: jax.Array, temperature: float = 1.0, top_k: int | None = None,
                    vocab_size: int | None = None, prompt_mask=None,
                    eos_id: int | None = None) -> np.ndarray:
    """Host-side convenience: prompt (1-D, or B x P left-padded with ``prompt_mask``) + new ids,
    as int32 numpy of shape (B, P + max_new_tokens); see :func:`generate`."""
    prompt = np.asarray(prompt_ids, dtype=np.int32)
    if prompt.ndim == 1:
        prompt = prompt[None]
    if max_new_tokens <= 0:
        return prompt
    out = generate(decoder, params, prompt, max_new_tokens, rng=rng, temperature=temperature,
                   top_k=top_k, vocab_size=vocab_size, prompt_mask=prompt_mask, eos_id=eos_id)
    return np.concatenate([prompt, np.asarray(out.tokens)], axis=1)
