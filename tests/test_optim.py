"""Schedules at hand-computed points; the weight-decay mask; AdamW decays only what it should."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.config import base as config_base
from pretrainx.core import optim


def opt(**kw):
    """The base optimizer section at shakespeare_char's values, with ``kw`` changed."""
    return config_base.change(config_base.optimizer(), {"b2": 0.99, "weight_decay": 0.1, **kw})


def test_cosine_matches_nanogpt_get_lr():
    sched = optim.learning_rate_schedule(opt())

    def nanogpt(it, lr=1e-3, min_lr=1e-4, warmup=100, decay=5000):   # nanoGPT train.py get_lr
        if it < warmup:
            return lr * (it + 1) / (warmup + 1)   # step 0 already updates
        if it > decay:
            return min_lr
        ratio = (it - warmup) / (decay - warmup)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)
    for it in (0, 1, 50, 99, 100, 1000, 2550, 4999, 5000, 7000):
        assert float(sched(it)) == pytest.approx(nanogpt(it), rel=1e-5, abs=1e-9), it


def test_inverse_sqrt_exponential_constant():
    inv = optim.learning_rate_schedule(opt(schedule="inverse_sqrt", warmup_steps=100))
    assert float(inv(100)) == pytest.approx(1e-3)
    assert float(inv(100 + 300)) == pytest.approx(1e-3 * math.sqrt(100 / 400))
    exp = optim.learning_rate_schedule(opt(schedule="exponential", warmup_steps=0, end_lr=0.0,
                                           decay_steps=1000, decay_rate=0.5))
    assert float(exp(1000)) == pytest.approx(5e-4) and float(exp(2000)) == pytest.approx(2.5e-4)
    const = optim.learning_rate_schedule(opt(schedule="constant", warmup_steps=10))
    assert float(const(5)) == pytest.approx(1e-3 * 6 / 11) and float(const(10_000)) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="unknown optimizer.schedule"):
        optim.learning_rate_schedule(opt(schedule="linear_warmdown"))


def test_decay_mask_spares_norms_biases_and_optionally_embeddings():
    params = {"wte": {"embedding": jnp.ones((8, 4))}, "ln_f": {"scale": jnp.ones(4)},
              "h_0": {"mlp": {"fc": {"kernel": jnp.ones((4, 16)), "bias": jnp.ones(16)}},
                      "ln_1": {"scale": jnp.ones(4), "bias": jnp.ones(4)}}}
    mask = optim.weight_decay_mask(params, "matrices")        # nanoGPT: embeddings decay too
    assert mask["h_0"]["mlp"]["fc"] == {"kernel": True, "bias": False}
    assert mask["wte"]["embedding"] is True and mask["ln_f"]["scale"] is False
    assert optim.weight_decay_mask(params, "matrices_no_embeddings")["wte"]["embedding"] is False
    assert mask["h_0"]["ln_1"] == {"scale": False, "bias": False}
    assert all(np.asarray(v) for v in __import__("jax").tree.leaves(optim.weight_decay_mask(params, "all")))


def test_adamw_with_zero_gradient_shrinks_only_decayed_weights():
    params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}
    tx, _ = optim.make_optimizer(opt(schedule="constant", warmup_steps=0, lr=0.1), params)
    state = tx.init(params)
    zeros = {"dense": {"kernel": jnp.zeros((2, 2)), "bias": jnp.zeros(2)}}
    updates, _ = tx.update(zeros, state, params)
    # decoupled decay: -lr * wd * w = -0.1 * 0.1 * 1
    np.testing.assert_allclose(updates["dense"]["kernel"], -0.01, rtol=1e-6)
    np.testing.assert_allclose(updates["dense"]["bias"], 0.0)


def test_layer_decay_scales_each_depths_step():
    """optimizer.layer_decay = d: the head keeps AdamW's step, block h_i gets d ** (L - i), the
    embeddings d ** (L + 1); d = 1 leaves the optimiser as it was."""
    import jax
    shape = lambda: jnp.ones((2, 2))
    params = {"backbone": {"wte": {"embedding": shape()}, "ln_emb": {"scale": jnp.ones(2)},
                           "h_0": {"attn": {"kernel": shape()}}, "h_1": {"mlp": {"kernel": shape()}},
                           "pooler": {"kernel": shape()}},
              "head": {"kernel": shape()}}
    grads = jax.tree.map(lambda x: 0.5 * jnp.ones_like(x), params)
    base = opt(schedule="constant", warmup_steps=0, lr=0.1, weight_decay=0.0)

    def first_update(o):
        tx, _ = optim.make_optimizer(o, params)
        return tx.update(grads, tx.init(params), params)[0]
    plain = first_update(base)
    decayed = first_update(opt(**{**base.to_dict(), "layer_decay": 0.5}))
    expected = {"wte": 0.125, "ln_emb": 0.125, "h_0": 0.25, "h_1": 0.5, "pooler": 1.0}
    for name, scale in expected.items():
        for a, b in zip(jax.tree.leaves(decayed["backbone"][name]),
                        jax.tree.leaves(plain["backbone"][name])):
            np.testing.assert_allclose(a, scale * b, rtol=1e-6, err_msg=name)
            assert np.abs(np.asarray(b)).min() > 0
    np.testing.assert_allclose(decayed["head"]["kernel"], plain["head"]["kernel"], rtol=1e-6)
    same = first_update(opt(**{**base.to_dict(), "layer_decay": 1.0}))
    jax.tree.map(np.testing.assert_array_equal, same, plain)
    with pytest.raises(ValueError, match="layer_decay"):
        optim.make_optimizer(opt(layer_decay=0.0), params)
