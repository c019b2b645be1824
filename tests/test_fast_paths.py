"""Speed options pinned against the plain path on CPU: several steps per dispatch (the loop's
CPU default), the RngBitGenerator step key, Adam's first moment in bf16."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.config import load as config_lib
from pretrainx.core import host_devices, step as step_lib

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


@pytest.mark.parametrize("n", [3, 2])
def test_steps_per_dispatch_equal_single_steps(n):
    # Dropout on, so the per-step keys (fold_in of the state's step) are exercised too; n = 2 of
    # 3 stacked batches: a chunk cut short trains on its first n batches only.
    cfg = tiny_config(**{"model.dropout": 0.1})
    built = train.setup(cfg)
    batches = _batches(built, cfg.seed, 3)
    start = _copy(built.state)
    state = built.state
    for b in batches[:n]:
        state, m = built.step_fn(state, b)
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *batches)
    multi = step_lib.steps_per_dispatch(built.step_fn, 3, state_shardings=built.shardings,
                                        batch_shardings=built.batch_shardings)
    multi_state, multi_m = multi(start, stacked, n)
    assert int(multi_state.step) == int(state.step) == n
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


def _rows(workdir):
    import json
    with open(workdir / "metrics.jsonl") as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_the_loop_dispatching_several_steps_trains_logs_and_resumes_as_one_step_at_a_time(tmp_path):
    # 12 steps, logged every 4, evaluated and saved every 6: the dispatches end at 4, 6, 8, 12
    cfg = tiny_config(**{"train.steps": 12, "train.log_every": 4, "eval.every": 6,
                         "checkpoint.every": 6, "optimizer.decay_steps": 12})
    one = train.run(config_lib.override(cfg, {"train.steps_per_dispatch": 1}), str(tmp_path / "one"))
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    assert host_devices.steps_per_dispatch(cfg, mesh) == 4    # 0: log_every on CPU devices
    full = train.run(cfg, str(tmp_path / "full"))
    # the same rows: a learning rate every step, the train metrics every 4, the evals every 6
    rows_one, rows_full = _rows(tmp_path / "one"), _rows(tmp_path / "full")
    assert [sorted(r) for r in rows_one] == [sorted(r) for r in rows_full]
    assert [r["step"] for r in rows_one] == [r["step"] for r in rows_full]
    for a, b in zip(rows_one, rows_full):
        for key in a.keys() - {"step", "train/steps_per_sec", "train/tokens_per_sec",
                               "time/elapsed_s", "time/eval_s"}:
            np.testing.assert_allclose(b[key], a[key], rtol=2e-5, err_msg=f"step {a['step']} {key}")
    assert sorted(os.listdir(tmp_path / "one" / "checkpoints")) == \
        sorted(os.listdir(tmp_path / "full" / "checkpoints"))
    # killed after step 9 (mid-dispatch 8..12, the last save at 6), then rerun: the steps replay
    # through the same program, bit for bit
    killed = train.run(cfg, str(tmp_path / "killed"), stop_after=9)
    assert killed.stopped_early and int(killed.state.step) == 9
    resumed = train.run(cfg, str(tmp_path / "killed"))
    assert int(resumed.state.step) == 12
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed.state.params),
                 jax.device_get(full.state.params))
    last_loss = lambda run: [h["train/loss"] for h in run.history if "train/loss" in h][-1]
    assert last_loss(resumed) == last_loss(full)
