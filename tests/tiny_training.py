"""A few jitted optimiser steps of a model on a fixed batch: the losses, for tests that check an
option or an optimiser still trains."""
import jax
import numpy as np
import optax


def next_token_losses(model, params, tx, tokens, steps: int) -> list[float]:
    """``steps`` updates of ``tx`` on next-token cross-entropy over ``tokens``; each step's loss."""
    def loss_fn(p):
        logits = model.apply({"params": p}, tokens)[:, :-1]
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(loss_fn)(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    state, losses = tx.init(params), []
    for _ in range(steps):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    assert np.all(np.isfinite(losses)), losses
    return losses
