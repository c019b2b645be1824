"""GPU speed options pinned against the plain path on CPU: several steps per dispatch, the
RngBitGenerator step key, Adam's first moment in bf16."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.core import step as step_lib

from pretrainx.core import train
from test_train import tiny_config


def _batches(built, seed, n):
    return [built.host_batch(built.dataset.train, i) for i in range(n)]


def _copy(tree):
    return jax.tree.map(jnp.copy, tree)


def _run_steps(cfg, n=3):
    built = train.setup(cfg)
    state, metrics = built.state, []
    for b in _batches(built, cfg.seed, n):
        state, m = built.step_fn(state, b)
        metrics.append(float(m["loss"]))
    return built, state, metrics


def test_stacked_steps_equal_single_steps():
    # Dropout on, so the per-step keys (fold_in of the state's step) are exercised too.
    cfg = tiny_config(**{"model.dropout": 0.1})
    built = train.setup(cfg)
    batches = _batches(built, cfg.seed, 3)
    start = _copy(built.state)
    state = built.state
    for b in batches:
        state, m = built.step_fn(state, b)
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *batches)
    multi_state, multi_m = step_lib.stacked_steps(built.step_fn, 3)(start, stacked)
    assert int(multi_state.step) == int(state.step) == 3
    np.testing.assert_allclose(float(multi_m["loss"]), float(m["loss"]), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(multi_state.params), jax.tree.leaves(state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_rbg_step_key_changes_nothing_without_randomness():
    # No dropout: the key is never used, so the RngBitGenerator key must give the same numbers.
    _, plain, plain_losses = _run_steps(tiny_config(**{"model.dropout": 0.0}))
    _, rbg, rbg_losses = _run_steps(tiny_config(**{"model.dropout": 0.0, "train.rng_impl": "rbg"}))
    assert plain_losses == rbg_losses
    for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(rbg.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("impl", ["rbg", "unsafe_rbg"])
def test_rbg_step_key_is_a_pure_function_of_the_step_with_fair_bits(impl):
    base = jax.random.PRNGKey(7)
    keep = lambda step: jax.random.bernoulli(step_lib.step_key(base, step, impl), 0.8, (200_000,))
    a, again, other = keep(3), keep(3), keep(4)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(again))   # resume replays the step
    assert not np.array_equal(np.asarray(a), np.asarray(other))
    assert abs(float(a.mean()) - 0.8) < 0.005 and abs(float(other.mean()) - 0.8) < 0.005
    # and the key's own bits are not threefry's
    assert not np.array_equal(np.asarray(a), np.asarray(keep_threefry(base, 3)))


def keep_threefry(base, step):
    return jax.random.bernoulli(step_lib.step_key(base, step), 0.8, (200_000,))


@pytest.mark.slow
def test_rbg_dropout_still_learns():
    _, _, losses = _run_steps(tiny_config(**{"model.dropout": 0.1, "train.rng_impl": "rbg",
                                             "optimizer.warmup_steps": 0}), n=6)
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
def test_bf16_first_moment_tracks_the_float32_update():
    base = {"optimizer.warmup_steps": 0, "model.dropout": 0.0}
    built, fp32, _ = _run_steps(tiny_config(**base))
    init = train.setup(tiny_config(**base)).state.params
    _, bf16, _ = _run_steps(tiny_config(**base, **{"optimizer.mu_dtype": "bfloat16"}))
    mus = [x for x in jax.tree.leaves(bf16.opt_state) if hasattr(x, "dtype") and x.ndim >= 1]
    assert any(x.dtype == jnp.bfloat16 for x in mus)   # mu is bf16 ...
    assert any(x.dtype == jnp.float32 and x.ndim >= 2 for x in mus)   # ... nu stays float32
    flat = lambda t: np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(t)])
    update = flat(fp32.params) - flat(init)
    gap = flat(bf16.params) - flat(fp32.params)
    assert np.linalg.norm(gap) < 0.02 * np.linalg.norm(update)


@pytest.mark.parametrize("key, value, message", [
    ("train.rng_impl", "philox", "unknown train.rng_impl 'philox'"),
    ("optimizer.mu_dtype", "float16", "unknown optimizer.mu_dtype 'float16'"),
])
def test_unknown_speed_option_is_a_one_line_error(key, value, message):
    with pytest.raises(ValueError, match=message):
        train.setup(tiny_config(**{key: value}))
