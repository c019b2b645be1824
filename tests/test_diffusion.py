"""DDPM: schedules, the closed-form forward process, the loss's minimiser, and the samplers (run
with the exact denoiser of Gaussian data, so their outputs have a known distribution)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.config import load as config_lib
from pretrainx.objectives import diffusion as ddpm

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs", "diffusion")
DATA_MEAN, DATA_STD = 0.3, 0.5          # per-pixel Gaussian "data" for the sampler tests


def test_linear_schedule_alpha_bar_T_matches_hand_value():
    # log abar_T = sum log(1 - b) = -(sum b + sum b^2/2 + sum b^3/3 + ...) with b = linspace(1e-4,
    # 0.02, 1000): sum b = 10.05, sum b^2 / 2 = 0.0670, sum b^3 / 3 = 0.00067 -> exp(-10.1177)
    abar = ddpm.make_schedule("linear", 1000).alpha_bars
    assert abar[-1] == pytest.approx(4.036e-5, rel=1e-3)
    assert abar[0] == pytest.approx(1 - 1e-4)


def test_cosine_schedule_is_monotone_and_ends_near_zero():
    s = ddpm.make_schedule("cosine", 1000)
    assert np.all(np.diff(s.alpha_bars) < 0) and s.alpha_bars[-1] < 1e-4
    assert s.betas.max() <= 0.999 and s.betas.min() > 0


def test_closed_form_marginal_matches_iterating_the_chain():
    schedule = ddpm.make_schedule("cosine", 50)
    x0 = np.linspace(-1, 1, 8)
    rng = np.random.default_rng(0)
    x = np.repeat(x0[None], 20000, axis=0)
    mean_coef, var = 1.0, 0.0
    for t, beta in enumerate(schedule.betas):          # x_t = sqrt(1 - b) x_{t-1} + sqrt(b) z
        x = np.sqrt(1 - beta) * x + np.sqrt(beta) * rng.standard_normal(x.shape)
        mean_coef, var = mean_coef * np.sqrt(1 - beta), (1 - beta) * var + beta
        if t in (0, 10, 49):
            abar = schedule.alpha_bars[t]
            assert mean_coef == pytest.approx(np.sqrt(abar)) and var == pytest.approx(1 - abar)
            closed = np.asarray(ddpm.q_sample(schedule.alpha_bars, jnp.asarray(x0[None]),
                                              jnp.array([t]), jnp.zeros((1, 8))))[0]
            np.testing.assert_allclose(closed, np.sqrt(abar) * x0, atol=1e-6)
            np.testing.assert_allclose(x.mean(0), closed, atol=0.03)
            np.testing.assert_allclose(x.std(0), np.sqrt(1 - abar), atol=0.03)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_loss_is_minimised_by_the_true_target_and_outputs_invert(prediction):
    k1, k2 = jax.random.split(jax.random.key(0))
    x0 = jax.random.uniform(k1, (4, 8, 8, 1), minval=-1, maxval=1)
    noise = jax.random.normal(k2, x0.shape)
    abar = jnp.array([0.9, 0.5, 0.1, 0.01])[:, None, None, None]
    x_t = jnp.sqrt(abar) * x0 + jnp.sqrt(1 - abar) * noise
    true = noise if prediction == "eps" else ddpm.v_target(abar, x0, noise)
    assert float(ddpm.denoising_loss(true, x0, noise, abar, prediction)) == 0.0
    assert float(ddpm.denoising_loss(true + 0.1, x0, noise, abar, prediction)) > 0.009
    x0_hat, eps_hat = ddpm.to_x0_eps(true, x_t, abar, prediction)
    np.testing.assert_allclose(x0_hat, x0, atol=1e-4)
    np.testing.assert_allclose(eps_hat, noise, atol=1e-4)


def _gaussian_eps(schedule):
    """E[eps | x_t] for x_0 ~ N(DATA_MEAN, DATA_STD^2) per pixel: the ideal eps-predictor."""
    abar = jnp.asarray(schedule.alpha_bars, jnp.float32)

    def predict(x, t):
        a = abar[jnp.asarray(t, jnp.int32)]
        var = a * DATA_STD ** 2 + (1 - a)
        return jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * DATA_MEAN) / var
    return predict


@pytest.fixture(scope="module")
def samplers():
    schedule = ddpm.make_schedule("linear", 200)
    predict = _gaussian_eps(schedule)

    @jax.jit
    def run(x_T, rng):
        kw = dict(prediction="eps", clip_x0=False)
        return dict(
            ancestral_beta=ddpm.ancestral_sample(predict, x_T, rng, schedule, **kw),
            ancestral_post=ddpm.ancestral_sample(predict, x_T, rng, schedule,
                                                 variance="posterior", **kw),
            ddim_all_eta1=ddpm.ddim_sample(predict, x_T, rng, schedule, 200, eta=1.0, **kw),
            ddim_all_eta0=ddpm.ddim_sample(predict, x_T, rng, schedule, 200, eta=0.0, **kw),
            ddim_20_eta0=ddpm.ddim_sample(predict, x_T, rng, schedule, 20, eta=0.0, **kw))
    return run


def test_samplers_reproduce_gaussian_data_and_are_deterministic(samplers):
    x_T = jax.random.normal(jax.random.key(1), (4000, 4))
    out = samplers(x_T, jax.random.key(2))
    for name, x in out.items():
        assert abs(float(x.mean()) - DATA_MEAN) < 0.03, name
        if name != "ddim_20_eta0":      # 20 deterministic steps under-disperse (std 0.43 here)
            assert abs(float(x.std()) - DATA_STD) < 0.03, name
    again = samplers(x_T, jax.random.key(2))
    for name in out:
        np.testing.assert_array_equal(out[name], again[name])
    other = samplers(x_T, jax.random.key(3))
    assert not np.allclose(other["ancestral_beta"], out["ancestral_beta"])
    # eta = 0 draws no noise: the result depends on x_T only
    np.testing.assert_array_equal(other["ddim_20_eta0"], out["ddim_20_eta0"])
    # DDIM over all steps with eta = 1 is the ancestral sampler with the posterior variance
    np.testing.assert_allclose(out["ddim_all_eta1"], out["ancestral_post"], atol=2e-4)


def test_ddim_timesteps_span_the_chain():
    steps = ddpm.ddim_timesteps(1000, 50)
    assert len(steps) == 50 and steps[0] == 0 and steps[-1] == 999
    np.testing.assert_array_equal(ddpm.ddim_timesteps(10, 10), np.arange(10))


@pytest.mark.slow
def test_ddpm_objective_trains_and_samples_deterministically():
    config = config_lib.load(os.path.join(CONFIGS, "digits_smoke.py:smoke"))
    objective = ddpm.DDPM(config)
    params = jax.jit(objective.init)(jax.random.key(0, impl="unsafe_rbg"))
    batch = {"image": jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 1)),
                                  jnp.float32),
             "label": jnp.arange(8, dtype=jnp.int32)}
    loss_and_grad = jax.jit(jax.value_and_grad(
        lambda p, r: objective.loss_fn(p, batch, r, train=True, frozen={})[0]))
    loss, grads = loss_and_grad(params, jax.random.key(1))
    assert np.isfinite(float(loss)) and float(loss) > 0.1     # a fresh net predicts eps ~ 0
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))

    kw = dict(sampler="ddim", steps=3, guidance=2.0)            # guidance: the CFG path too
    a = objective.sample_images(params, jax.random.key(5), 6, **kw)
    b = objective.sample_images(params, jax.random.key(5), 6, **kw)
    c = objective.sample_images(params, jax.random.key(6), 6, **kw)
    assert a.shape == (6, 8, 8, 1) and np.all(np.abs(a) <= 1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
