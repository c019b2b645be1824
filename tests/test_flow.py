"""Flow matching on the linear path x_t = (1 - t) x_0 + t eps: the target velocity, the samplers
(exact on the conditional velocity), and the objective end to end with a tiny UNet."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.config import load as config_lib
from pretrainx.objectives import flow

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs", "diffusion")


def _endpoints():
    k1, k2 = jax.random.split(jax.random.key(0))
    x0 = jax.random.uniform(k1, (5, 4, 4, 1), minval=-1, maxval=1)
    return x0, jax.random.normal(k2, x0.shape)


def test_path_endpoints_and_target_velocity_is_its_derivative():
    x0, noise = _endpoints()
    np.testing.assert_array_equal(flow.interpolate(x0, noise, jnp.zeros(5)), x0)
    np.testing.assert_array_equal(flow.interpolate(x0, noise, jnp.ones(5)), noise)
    t, h = jnp.full((5,), 0.3), 1e-2
    finite_difference = (flow.interpolate(x0, noise, t + h) - flow.interpolate(x0, noise, t)) / h
    np.testing.assert_allclose(finite_difference, flow.target_velocity(x0, noise), atol=1e-4)
    np.testing.assert_allclose(flow.target_velocity(x0, noise), noise - x0)   # x_1 - x_0


@pytest.mark.parametrize("sampler,steps", [("euler", 1), ("euler", 7), ("heun", 2)])
def test_integrating_the_true_velocity_recovers_the_data_endpoint(sampler, steps):
    x0, noise = _endpoints()
    true_velocity = lambda x, t: noise - x0          # constant along each straight path
    fn = flow.euler_sample if sampler == "euler" else flow.heun_sample
    np.testing.assert_allclose(fn(true_velocity, noise, steps), x0, atol=1e-5)


def test_euler_follows_the_exact_marginal_velocity_of_gaussian_data():
    # x_0 ~ N(m, s^2), eps ~ N(0, 1): x_t is Gaussian and E[eps - x_0 | x_t] is linear in x_t.
    m, s = 0.3, 0.5

    def velocity(x, t):
        mean_t, var_t = (1 - t) * m, (1 - t) ** 2 * s ** 2 + t ** 2
        cov_v_x = t - (1 - t) * s ** 2                 # Cov(eps - x_0, x_t)
        return -m + cov_v_x / var_t * (x - mean_t)
    x1 = jax.random.normal(jax.random.key(1), (4000, 4))
    out = jax.jit(lambda x: flow.euler_sample(velocity, x, 64))(x1)
    assert abs(float(out.mean()) - m) < 0.03 and abs(float(out.std()) - s) < 0.03


def test_time_sampling_lies_in_the_unit_interval():
    for kind in ("uniform", "logit_normal"):
        t = flow.sample_times(jax.random.key(0), 1000, kind)
        assert float(t.min()) >= 0 and float(t.max()) <= 1 and 0.4 < float(t.mean()) < 0.6


@pytest.mark.slow
def test_flow_objective_trains_and_samples_deterministically():
    config = config_lib.load(os.path.join(CONFIGS, "digits_smoke.py:flow,smoke"))
    objective = flow.FlowMatching(config)
    params = jax.jit(objective.init)(jax.random.key(0, impl="unsafe_rbg"))
    batch = {"image": jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 1)),
                                  jnp.float32),
             "label": jnp.arange(8, dtype=jnp.int32)}
    loss, metrics = jax.jit(lambda p, r: objective.loss_fn(p, batch, r, train=True, frozen={}))(
        params, jax.random.key(1))
    # a fresh net outputs 0, so the loss is E|eps - x_0|^2 = 1 + E x_0^2 = 1 + 1/3
    assert float(loss) == pytest.approx(4 / 3, rel=0.15) and "mse" in metrics

    kw = dict(sampler="euler", steps=2, guidance=1.5)
    a = objective.sample_images(params, jax.random.key(5), 4, **kw)
    b = objective.sample_images(params, jax.random.key(5), 4, **kw)
    assert a.shape == (4, 8, 8, 1)
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_pretrainx_sample_takes_the_image_objective_s_own_flags(tmp_path, capsys):
    from pretrainx import main
    workdir = str(tmp_path / "run")
    assert main.cli(["train", "--config", os.path.join(CONFIGS, "digits_smoke.py:flow,smoke"),
                     "--workdir", workdir, "--config.train.steps=2", "--config.eval.every=0",
                     "--config.checkpoint.every=2", "--config.eval.fid_num_samples=0",
                     "--config.eval.grid_samples=0"]) == 0
    capsys.readouterr()
    assert main.cli(["sample", "--workdir", workdir, "--sampler", "heun", "--steps", "2",
                     "--num-samples", "4", "--guidance", "1.5", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote 4 samples (heun, 2 steps, guidance 1.5, seed 3)")
    assert os.path.exists(os.path.join(workdir, "samples", "sample_heun2_g1.5_seed3.png"))
    assert main.cli(["sample", "--workdir", workdir, "--sampler", "ddim"]) == 2
    assert "invalid choice: 'ddim'" in capsys.readouterr().err       # flow's samplers only
