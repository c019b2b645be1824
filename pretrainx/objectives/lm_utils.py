"""Pieces the preference objectives (``reward``, ``dpo``, ``ppo``) share: token log-probabilities
of a causal LM, reading a per-position output at a row's last real token, the policy's init key,
sampled continuations and best-of-N sampling against a reward model."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.errors import UserError
from pretrainx.models import decoding, gpt
from pretrainx.data import rng as streams
from pretrainx.objectives import losses

#: batch keys of the "preferences" data kind (data/preferences.py)
PAIR_KEYS = ("chosen", "chosen_mask", "chosen_response", "rejected", "rejected_mask",
             "rejected_response")


def policy_key(config) -> jax.Array:
    """The key both the trained policy and its frozen reference are initialised with. Without
    ``init_from`` (a ``:smoke`` run from scratch) the reference is then the initial policy, as it
    would be after loading one pretrained run into both; ``init_from`` overwrites both anyway."""
    return jax.random.PRNGKey(int(config.seed) + streams.POLICY_INIT_SEED_OFFSET)


def token_logprobs(logits_BxTxV, tokens_BxT, temperature: float = 1.0):
    """(log p(token t | tokens < t), entropy of that next-token distribution) at every position
    t >= 1, as B x T with position 0 (nothing predicts it) set to 0."""
    logp, entropy = losses.target_logprobs(logits_BxTxV[:, :-1], tokens_BxT[:, 1:], temperature)
    pad = jnp.zeros_like(logp[:, :1])
    return jnp.concatenate([pad, logp], 1), jnp.concatenate([pad, entropy], 1)


def last_real_index(mask_BxT):
    """The index of each row's last real token (rows are right-padded)."""
    return jnp.maximum(mask_BxT.astype(jnp.int32).sum(-1) - 1, 0)


def at_index(x_BxT, index_B):
    return jnp.take_along_axis(x_BxT, index_B[:, None], axis=1)[:, 0]


def both_sides(batch):
    """Chosen and rejected rows stacked into one batch of 2B (one forward pass for both)."""
    cat = lambda key: jnp.concatenate([batch[f"chosen{key}"], batch[f"rejected{key}"]], 0)
    return cat(""), cat("_mask"), cat("_response")


POOLS = ("last", "mean")


def reward_scores(reward_model: gpt.GPTScalar, params, tokens_BxT, mask_BxT, *, train=False,
                  rng=None, pool: str = "last"):
    """The reward model's score of each right-padded row: its output at the last real token
    (``pool="last"``), or the mean of its per-position outputs over the real tokens ("mean": a
    sum of per-token terms, the shape of a lexicon score, which a small trunk's last position
    summarises poorly)."""
    out_BxT = reward_model.apply({"params": params}, tokens_BxT, train=train,
                                 rngs={"dropout": rng} if train else None)
    if pool == "mean":
        mask = mask_BxT.astype(out_BxT.dtype)
        return (out_BxT * mask).sum(-1) / jnp.maximum(mask.sum(-1), 1.0)
    if pool != "last":
        raise UserError(f"reward pool must be one of {POOLS}, got {pool!r}")
    return at_index(out_BxT, last_real_index(mask_BxT))


def sample_continuations(model_config, params, prompt_ids: list[int], *, num_samples: int,
                         max_new_tokens: int, temperature: float, top_k: int | None, seed: int,
                         eos_id: int | None = None):
    """``num_samples`` continuations of one prompt: (B x (P + N) ids, B new-token lengths)."""
    prompts = np.tile(np.asarray(prompt_ids, np.int32)[None], (num_samples, 1))
    out = decoding.generate(gpt.GPTDecoder(model_config), params, prompts, max_new_tokens,
                            rng=jax.random.PRNGKey(seed), temperature=temperature, top_k=top_k,
                            eos_id=eos_id)
    return np.concatenate([prompts, np.asarray(out.tokens)], 1), np.asarray(out.lengths)


@functools.lru_cache(maxsize=8)
def _scorer(model_config, pool: str = "last"):
    """One jitted reward scorer per architecture (a fresh lambda each call would recompile)."""
    return jax.jit(lambda p, t, m: reward_scores(gpt.GPTScalar(model_config), p, t, m, pool=pool))


def best_of_n(model_config, policy_params, reward_params, prompt_ids: list[int], *, n: int,
              max_new_tokens: int, temperature: float, top_k: int | None, seed: int,
              eos_id: int | None = None, pool: str = "last"):
    """Draw ``n`` continuations and keep the one the reward model scores highest, the baseline
    every RLHF method is compared with at matched KL (its KL to the sampler is at most
    log n − (n − 1)/n). Returns (best row's ids, its score, all scores)."""
    rows, lengths = sample_continuations(model_config, policy_params, prompt_ids, num_samples=n,
                                         max_new_tokens=max_new_tokens, temperature=temperature,
                                         top_k=top_k, seed=seed, eos_id=eos_id)
    mask = np.arange(rows.shape[1])[None] < (len(prompt_ids) + lengths)[:, None]
    scores = np.asarray(_scorer(model_config, pool)(reward_params, jnp.asarray(rows), jnp.asarray(mask)))
    best = int(np.argmax(scores))
    return rows[best, :len(prompt_ids) + int(lengths[best])], float(scores[best]), scores
