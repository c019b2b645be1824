"""Pure loss math shared by objectives. Imports jax only."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def cross_entropy(logits, targets, *, weights=None, label_smoothing: float = 0.0):
    """Token cross-entropy with optional label smoothing and padding weights.

    Returns (mean loss over weighted tokens, mean NLL of the true token, token accuracy, weight sum).
    The smoothed loss is what is optimised; the plain NLL is what perplexity and bits/char report,
    so a run with smoothing stays comparable to one without.
    """
    logits = logits.astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    if label_smoothing:
        smooth = -log_probs.mean(axis=-1)   # cross-entropy against the uniform distribution
        loss_tok = (1.0 - label_smoothing) * nll + label_smoothing * smooth
    else:
        loss_tok = nll
    if weights is None:
        weights = jnp.ones_like(nll)
    weights = weights.astype(jnp.float32)
    denom = jnp.maximum(weights.sum(), 1.0)
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    return ((loss_tok * weights).sum() / denom, (nll * weights).sum() / denom,
            (correct * weights).sum() / denom, weights.sum())


def target_logprobs(logits_BxTxV, targets_BxT, temperature: float = 1.0):
    """(log p(target) at every position, the entropy of each position's distribution), float32,
    under softmax(logits / temperature). The one token log-probability of the objectives: the
    NLL of a mixture's components is its negative, a policy's next-token log-probabilities read
    it one position shifted (``lm_utils.token_logprobs``); unused entropy costs nothing in jit."""
    log_probs = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32) / temperature, axis=-1)
    logp = jnp.take_along_axis(log_probs, targets_BxT[..., None], axis=-1)[..., 0]
    return logp, -(jnp.exp(log_probs) * log_probs).sum(-1)
