"""Rectified flow / flow matching (Liu et al. 2022; Lipman et al. 2022) on the linear path.

Convention: t = 0 is data and t = 1 is noise, x_t = (1 - t) x_0 + t eps, so the path's velocity is
dx_t/dt = eps - x_0 (constant along each path: the x_1 - x_0 direction with x_1 = eps). The UNet
regresses that velocity; sampling integrates dx/dt = v(x, t) from t = 1 (noise) down to t = 0 with
Euler or Heun steps on a uniform grid. The UNet sees 1000 t, the range of the DDPM step index its
sinusoidal time embedding was designed for.

Config: flow.{time_sampling ("uniform" | "logit_normal" | "end": t = 1, the 1-step distillation of
reflow), logit_mean, logit_std, cfg_drop};
sample.{sampler ("euler" | "heun"), steps, guidance}. Everything else: image_common.py.

As for ddpm, the path is built in ``loss_fn`` from the device rng (t and eps cost nothing to draw
there and the host ships only the clean images). Reflow (``data.couplings``, see
``pretrainx/tools/couplings.py``) ships fixed pairs instead: a batch with "noise" uses it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from pretrainx.errors import UserError
from pretrainx.objectives import settings
from pretrainx.objectives.base import register
from pretrainx.objectives.image_common import ImageGenerativeObjective

MODEL_TIME_SCALE = 1000.0


def interpolate(x0, noise, t):
    """x_t = (1 - t) x_0 + t eps, t of shape (B,)."""
    t = t.reshape(-1, *([1] * (x0.ndim - 1)))
    return (1.0 - t) * x0 + t * noise


def target_velocity(x0, noise):
    return noise - x0


def sample_times(rng, batch: int, kind: str = "uniform", mean: float = 0.0, std: float = 1.0):
    """Training times in (0, 1): uniform, or logit-normal (Esser et al. 2024: more mid-path)."""
    if kind == "uniform":
        return jax.random.uniform(rng, (batch,), jnp.float32)
    if kind == "end":                 # t = 1 only: 1-step distillation on reflow pairs
        return jnp.ones((batch,), jnp.float32)
    if kind == "logit_normal":
        return jax.nn.sigmoid(mean + std * jax.random.normal(rng, (batch,), jnp.float32))
    raise UserError(f"unknown time sampling {kind!r} (config.flow.time_sampling)")


def euler_sample(predict, x1, steps: int):
    """x_{t - 1/n} = x_t - (1/n) v(x_t, t), from t = 1 down to 0 in ``steps`` steps."""
    dt = 1.0 / steps

    def step(i, x):
        t = 1.0 - i * dt
        return x - dt * predict(x, t)

    return jax.lax.fori_loop(0, steps, step, x1)


def interval_sample(predict, x1, steps: int):
    """x_{t - 1/n} = x_t - (1/n) f(x_t, t, 1/n) on the uniform grid from t = 1 down to 0: Euler
    steps of a network that is told each step's length, the shortcut model's s(x_t, t, d)
    (Frans et al. 2024, Algorithm 2) and MeanFlow's u(z_t, r, t) with t - r = 1/n (Geng et al.
    2025, eq. 12 z_r = z_t - (t - r) u); ``predict(x, t, interval)``."""
    dt = 1.0 / steps

    def step(i, x):
        t = 1.0 - i * dt
        return x - dt * predict(x, t, dt)

    return jax.lax.fori_loop(0, steps, step, x1)


def heun_sample(predict, x1, steps: int):
    """Heun's second-order method (trapezoidal corrector): 2 network calls a step."""
    dt = 1.0 / steps

    def step(i, x):
        t = 1.0 - i * dt
        v = predict(x, t)
        x_euler = x - dt * v
        return x - dt * 0.5 * (v + predict(x_euler, t - dt))

    return jax.lax.fori_loop(0, steps, step, x1)


@register("flow")
class FlowMatching(ImageGenerativeObjective):
    section = "flow"
    samplers = ("euler", "heun")

    def model_time(self, t):
        return MODEL_TIME_SCALE * t

    def loss_fn(self, params, batch, rng, *, train, frozen=None, ctx=None):
        x0 = batch["image"].astype(jnp.float32)
        t_rng, noise_rng, drop_rng, label_rng = jax.random.split(rng, 4)
        f = self.config.flow
        t = sample_times(t_rng, x0.shape[0], f.time_sampling,
                         f.logit_mean, f.logit_std)
        if "noise" in batch:          # reflow: the pair's own noise (data.couplings)
            noise = batch["noise"].astype(jnp.float32)
        else:
            noise = jax.random.normal(noise_rng, x0.shape, jnp.float32)
        labels = self.training_labels(batch, label_rng) if train else (
            batch["label"].astype(jnp.int32) if self.num_classes else None)
        velocity = self.apply_model(params, interpolate(x0, noise, t), t, labels, train=train,
                                    rng=drop_rng)
        loss = jnp.mean(jnp.square(velocity.astype(jnp.float32) - target_velocity(x0, noise)))
        return loss, {"mse": loss}

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        settings.choice(config, "flow.time_sampling", ("uniform", "logit_normal", "end"))
        settings.number(config, "flow.logit_std", 0.0, low_open=True)

    def run_sampler(self, predict, noise, rng, sampler, steps):
        del rng                       # both samplers are deterministic given the initial noise
        if sampler == "euler":
            return euler_sample(predict, noise, steps)
        return heun_sample(predict, noise, steps)
