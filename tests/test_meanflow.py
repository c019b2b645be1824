"""MeanFlow: the JVP target equals the closed-form average velocity of a field whose flow is known
exactly, the JVP through the real UNet matches finite differences, the (t, r) sampler, the
adaptive weight, trained-in guidance, and the samplers (exact with the exact average velocity);
both few-step objectives also trace on the DiT backbone."""
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.config import load as config_lib
from pretrainx.objectives import flow, meanflow

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs", "diffusion")
A = 1.3    # the linear field dz/dt = A z: z_s = z_t exp(A (s - t))


def exact_average_velocity(z_t, t, r):
    """u(z_t, r, t) = (z_t - z_r) / (t - r) = z_t (1 - exp(-A (t - r))) / (t - r) for t > r."""
    h = (t - r).reshape(-1, 1, 1, 1)
    return z_t * -jnp.expm1(-A * h) / h


def test_target_equals_the_closed_form_average_velocity_of_a_linear_field():
    z = jax.random.normal(jax.random.key(0), (4, 2, 2, 1))
    t, r = jnp.array([0.9, 0.6, 1.0, 0.3]), jnp.array([0.1, 0.5, 0.0, 0.29])
    u, u_tgt = meanflow.meanflow_target(exact_average_velocity, z, t, r, velocity=A * z)
    np.testing.assert_allclose(u_tgt, exact_average_velocity(z, t, r), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(u, exact_average_velocity(z, t, r), rtol=1e-6)
    # a wrong u is not its own target: the identity pins u (here u = v, the r -> t limit)
    _, wrong = meanflow.meanflow_target(lambda z, t, r: A * z, z, t, r, velocity=A * z)
    assert not np.allclose(wrong, A * z, rtol=1e-2)
    # r = t: the target is the velocity itself, whatever u's derivative
    cubic = lambda z, t, r: z ** 3 * t.reshape(-1, 1, 1, 1)
    _, at_t = meanflow.meanflow_target(cubic, z, t, t, velocity=A * z)
    np.testing.assert_allclose(at_t, A * z, rtol=1e-6)


def test_samplers_with_the_exact_average_velocity_land_on_the_trajectory():
    z1 = jax.random.normal(jax.random.key(1), (3, 2, 2, 1))
    exact = lambda z, t, interval: exact_average_velocity(z, jnp.full(3, t), jnp.full(3, t - interval))
    for steps in (1, 2, 5):                      # any number of steps: z_0 = z_1 exp(-A)
        np.testing.assert_allclose(flow.interval_sample(exact, z1, steps), z1 * np.exp(-A),
                                   rtol=1e-5)


@pytest.fixture(scope="module")
def objective_and_params():
    """The smoke config's objective and its tiny UNet's parameters, made once for the module."""
    config = config_lib.load(os.path.join(CONFIGS, "digits_meanflow.py:smoke"))
    objective = meanflow.MeanFlow(config)
    params = nn.meta.unbox(jax.jit(objective.init)(jax.random.key(0, impl="unsafe_rbg")))
    rng = np.random.default_rng(0)    # the last conv starts at zero: make the net a real function
    params = jax.tree.map(lambda p: p + 0.05 * rng.standard_normal(p.shape).astype(p.dtype),
                          params)
    return objective, params


@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
def test_jvp_through_the_unet_matches_finite_differences(objective_and_params):
    objective, params = objective_and_params
    labels = jnp.arange(4, dtype=jnp.int32)
    u_fn = lambda z, t, r: objective.apply_model(params, z, t, labels, train=False,
                                                 interval=t - r)
    z = jax.random.normal(jax.random.key(2), (4, 8, 8, 1))
    v = jax.random.normal(jax.random.key(3), z.shape)
    t, r = jnp.array([0.9, 0.7, 0.5, 0.3]), jnp.array([0.2, 0.7, 0.1, 0.05])
    u, u_tgt = jax.jit(lambda z, v: meanflow.meanflow_target(u_fn, z, t, r, v))(z, v)
    h = 1e-2                          # central differences along (v, 1, 0)
    du_dt = (u_fn(z + h * v, t + h, r) - u_fn(z - h * v, t - h, r)) / (2 * h)
    expected = v - (t - r).reshape(-1, 1, 1, 1) * du_dt
    assert float(jnp.abs(du_dt).mean()) > 0.05      # the derivative is not trivially zero
    np.testing.assert_allclose(u_tgt, expected, atol=3e-3 * float(jnp.abs(expected).max()))


def test_time_pairs_are_ordered_with_the_configured_share_of_r_equal_t():
    for kw in (dict(mean=-0.4, std=1.0), dict(mean=-0.6, std=1.6, r_mean=-4.0, r_std=1.6)):
        t, r = meanflow.sample_time_pairs(jax.random.key(0), 1000, equal_fraction=0.75, **kw)
        t, r = np.asarray(t), np.asarray(r)
        assert np.all(t >= r) and t.min() > 0 and t.max() < 1 and r.min() > 0
        assert np.all(t[:750] == r[:750])
        # the other rows span an interval (the clamped sampler sets r = t where r drew above t)
        assert np.mean(t[750:] > r[750:]) > (0.99 if "r_mean" not in kw else 0.85)


def test_adaptive_weight_divides_by_the_stopped_error():
    err = jnp.array([0.5, 2.0, 8.0])
    assert float(meanflow.adaptive_weighted_loss(err, 0.0, 1e-3)) == pytest.approx(3.5)
    assert float(meanflow.adaptive_weighted_loss(err, 1.0, 0.0)) == pytest.approx(1.0)
    grad = jax.grad(lambda e: meanflow.adaptive_weighted_loss(e, 0.75, 1e-3))(err)
    np.testing.assert_allclose(grad, (err + 1e-3) ** -0.75 / 3, rtol=1e-5)


def test_guided_velocity_mixes_model_velocities_and_spares_dropped_rows(objective_and_params):
    plain, params = objective_and_params       # guidance changes the target, not the network
    objective = meanflow.MeanFlow(config_lib.override(
        plain.config, {"meanflow.omega": 2.0, "meanflow.kappa": 0.5}))
    z = jax.random.normal(jax.random.key(4), (3, 8, 8, 1))
    v = jax.random.normal(jax.random.key(5), z.shape)
    t = jnp.array([0.8, 0.5, 0.2])
    cond = jnp.array([1, 2, 3], jnp.int32)
    labels = cond.at[2].set(objective.model.null_label)        # row 2's label was dropped
    guided = jax.jit(objective.guided_velocity)(params, z, t, v, cond, labels)
    at_t = jax.jit(lambda y: objective.apply_model(params, z, t, y, train=False,
                                                   interval=jnp.zeros(3)))
    expected = 2.0 * v + 0.5 * at_t(cond) + (1 - 2.0 - 0.5) * at_t(jnp.full(3, 10))
    np.testing.assert_allclose(guided[:2], expected[:2], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(guided[2], v[2])


@pytest.mark.slow
def test_loss_trains_and_samples_in_one_step(objective_and_params):
    objective, params = objective_and_params
    batch = {"image": jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 1)),
                                  jnp.float32), "label": jnp.arange(8, dtype=jnp.int32)}
    value_and_grad = jax.jit(jax.value_and_grad(
        lambda p, rng: objective.loss_fn(p, batch, rng, train=True, frozen={}), has_aux=True))
    (loss, metrics), grads = value_and_grad(params, jax.random.key(1))
    assert np.isfinite(float(loss)) and {"mse", "mse_flow"} <= set(metrics)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))
    one = objective.sample_images(params, jax.random.key(5), 4, sampler="meanflow", steps=1)
    assert one.shape == (4, 8, 8, 1) and float(np.abs(one).max()) > 0.1
    with pytest.raises(ValueError, match="meanflow.r_mean"):
        meanflow.MeanFlow.check_config(
            config_lib.override(objective.config, {"meanflow.r_std": None}))


@pytest.mark.parametrize("objective_name", ["meanflow", "shortcut"])
def test_few_step_objectives_trace_on_the_dit_backbone(objective_name):
    # shapes only (no compile): the loss and its gradient go through the DiT's interval input
    from pretrainx import objectives
    config = config_lib.load(os.path.join(CONFIGS, f"digits_{objective_name}.py:smoke"))
    from pretrainx.config import images
    config.model = images.dit_model(config.model)
    config.model.update(hidden_size=32, depth=1, num_heads=2)
    objective = objectives.get(objective_name)(config)
    params = jax.eval_shape(objective.init, jax.random.key(0))
    assert "interval_embed0" in params
    batch = {"image": jnp.zeros((8, 8, 8, 1)), "label": jnp.arange(8, dtype=jnp.int32)}
    grads = jax.eval_shape(jax.grad(lambda p: objective.loss_fn(
        p, batch, jax.random.key(1), train=True)[0]), params)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
