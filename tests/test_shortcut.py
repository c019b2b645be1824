"""Shortcut models: the self-consistency target is two half steps of the model (by hand, and with
the real UNet through the objective's own sampler), the batch layout over step sizes and times, the
d = 0 query at the smallest step, and the loss end to end on a tiny UNet."""
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.config import load as config_lib
from pretrainx.objectives import shortcut

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs", "diffusion")


def test_self_consistency_target_is_two_half_steps_on_a_hand_case():
    # s(x, t, d) = x (1 + t) + d at x = 0.5, t = 0.5, d = 0.25:
    #   s1 = 0.5 * 1.5 + 0.25 = 1.0;  x' = 0.5 - 0.25 * 1.0 = 0.25 at t - d = 0.25
    #   s2 = 0.25 * 1.25 + 0.25 = 0.5625;  target = (1.0 + 0.5625) / 2 = 0.78125
    def predict(x, t, d):
        return x * (1 + t[:, None]) + d[:, None]
    x, t, d = jnp.array([[0.5]]), jnp.array([0.5]), jnp.array([0.25])
    target = shortcut.self_consistency_target(predict, x, t, d)
    assert float(target[0, 0]) == pytest.approx(0.78125)
    # one step of 2d along the target lands where the two half steps land: 0.25 - 0.25 * 0.5625
    assert float(x[0, 0] - 2 * d[0] * target[0, 0]) == pytest.approx(0.109375)


def test_the_target_carries_no_gradient():
    def target_sum(scale):
        predict = lambda x, t, d: scale * x
        x = jnp.ones((2, 3))
        return jnp.sum(shortcut.self_consistency_target(predict, x, jnp.ones(2), jnp.full(2, .5)))
    assert float(target_sum(2.0)) != 0.0 and float(jax.grad(target_sum)(2.0)) == 0.0


def test_bootstrap_rows_share_the_powers_of_two_and_times_stay_on_their_grid():
    two_d = shortcut.bootstrap_step_sizes(21, max_steps=128)    # 2d in {1, ..., 1/64}: 7 levels
    values, counts = np.unique(two_d, return_counts=True)
    np.testing.assert_allclose(sorted(values), [2.0 ** -j for j in range(6, -1, -1)])
    assert set(counts) == {3}
    t = np.asarray(shortcut.grid_times(jax.random.key(0), jnp.asarray(np.repeat(two_d, 50))))
    steps = t / np.repeat(two_d, 50)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-4)   # t = k * 2d
    assert t.min() > 0 and t.max() <= 1.0 and np.all(t - np.repeat(two_d, 50) >= -1e-6)
    # the half steps reach 1/128, whose query is d = 0 (the flow), as the flow-matching rows
    assert np.min(two_d) / 2 == 1 / 128


@pytest.fixture(scope="module")
def objective_and_params():
    """The smoke config's objective and its tiny UNet's parameters, made once for the module."""
    config = config_lib.load(os.path.join(CONFIGS, "digits_shortcut.py:smoke"))
    objective = shortcut.ShortcutModel(config)
    params = nn.meta.unbox(jax.jit(objective.init)(jax.random.key(0, impl="unsafe_rbg")))
    rng = np.random.default_rng(0)    # the last conv starts at zero: make the net a real function
    params = jax.tree.map(lambda p: p + 0.05 * rng.standard_normal(p.shape).astype(p.dtype),
                          params)
    return objective, params


@pytest.mark.slow
def test_target_with_the_unet_matches_the_objectives_two_step_sampler(objective_and_params):
    objective, params = objective_and_params
    labels = jnp.arange(4, dtype=jnp.int32)
    predict = objective.guided_predictor(params, labels, 1.0)
    x1 = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
    two_steps = objective.run_sampler(predict, x1, None, "shortcut", 2)     # d = 1/2 twice
    target = shortcut.self_consistency_target(predict, x1, jnp.ones(4), jnp.full(4, 0.5))
    np.testing.assert_allclose(x1 - 1.0 * target, two_steps, atol=1e-5)
    # the network sees d = 0 at the smallest step 1/M and below; larger steps unchanged
    d = jnp.array([0.0, 1 / 256, 1 / 128, 1 / 64, 1.0])
    np.testing.assert_allclose(objective.model_interval(d), 1000 * jnp.array([0, 0, 0, 1 / 64, 1]))
    # ... and the d conditioning reaches the output
    assert not np.allclose(predict(x1, 1.0, 1.0), predict(x1, 1.0, 0.25))


def test_shortcut_sampler_is_exact_on_straight_paths_and_euler_queries_d_zero(
        objective_and_params):
    x0 = jax.random.uniform(jax.random.key(2), (3, 4, 4, 1), minval=-1, maxval=1)
    noise = jax.random.normal(jax.random.key(3), x0.shape)
    straight = lambda x, t, d: noise - x0        # the exact shortcut of a straight path
    objective, _ = objective_and_params
    for steps in (1, 4):
        np.testing.assert_allclose(objective.run_sampler(straight, noise, None, "shortcut", steps),
                                   x0, atol=1e-5)
    seen = []
    objective.run_sampler(lambda x, t, d: seen.append(d) or 0 * x, noise, None, "euler", 3)
    assert seen == [0.0]                         # traced once inside the loop, with d = 0


@pytest.mark.slow
def test_loss_splits_the_batch_and_trains_and_samples(objective_and_params):
    objective, params = objective_and_params
    batch = {"image": jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (16, 8, 8, 1)),
                                  jnp.float32), "label": jnp.arange(16, dtype=jnp.int32) % 10}
    value_and_grad = jax.jit(jax.value_and_grad(
        lambda p, r: objective.loss_fn(p, batch, r, train=True, frozen={}), has_aux=True))
    (loss, metrics), grads = value_and_grad(params, jax.random.key(1))
    # 4 of 16 rows self-consistency, 12 flow matching; the loss is the mean over all 16 rows
    expected = (4 * metrics["mse_self_consistency"] + 12 * metrics["mse_flow"]) / 16
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    images = objective.sample_images(params, jax.random.key(5), 4, sampler="shortcut", steps=1)
    again = objective.sample_images(params, jax.random.key(5), 4, sampler="shortcut", steps=1)
    assert images.shape == (4, 8, 8, 1)
    np.testing.assert_array_equal(images, again)


def test_without_self_consistency_rows_the_loss_is_flow_matching_at_d_zero(objective_and_params):
    objective, params = objective_and_params
    flow_only = shortcut.ShortcutModel(config_lib.override(objective.config,
                                                           {"shortcut.bootstrap_fraction": 0.0}))
    batch = {"image": jnp.zeros((4, 8, 8, 1)), "label": jnp.arange(4, dtype=jnp.int32)}
    loss, metrics = jax.eval_shape(lambda p: flow_only.loss_fn(p, batch, jax.random.key(0),
                                                               train=True), params)
    assert loss.shape == () and set(metrics) == {"mse_flow"}


def test_bad_settings_fail_with_the_field_named():
    config = config_lib.load(os.path.join(CONFIGS, "digits_shortcut.py:smoke"))
    with pytest.raises(ValueError, match="shortcut.max_steps"):
        shortcut.ShortcutModel.check_config(
            config_lib.override(config, {"shortcut.max_steps": 100}))
    with pytest.raises(ValueError, match="shortcut.bootstrap_fraction"):
        shortcut.ShortcutModel.check_config(
            config_lib.override(config, {"shortcut.bootstrap_fraction": 1.0}))
