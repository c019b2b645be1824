"""DDPM (Ho et al. 2020): discrete-time Gaussian diffusion with an epsilon- (or v-) predicting UNet.

Conventions: steps t = 0..T-1 (0-based as in Ho et al.'s code); alpha_bar[t] = prod_{s<=t}(1 -
beta[s]); q(x_t | x_0) = N(sqrt(alpha_bar[t]) x_0, (1 - alpha_bar[t]) I). The UNet sees t as a float.

Config: diffusion.{timesteps, schedule ("linear" | "cosine"), prediction ("eps" | "v"), cfg_drop};
sample.{sampler ("ancestral" | "ddim"), steps (ddim only; ancestral always runs all T), eta (ddim),
variance ("beta" | "posterior", ancestral), clip_x0, guidance}. Everything else: image_common.py.

The noising happens in ``loss_fn``, not in ``transform``: it needs only (x_0, t, noise) and the
device rng draws t and noise where the batch already lives, so the host ships one image array
rather than three, and resume stays exact because the runner's step rng is itself deterministic.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.errors import UserError
from pretrainx.objectives import settings
from pretrainx.objectives.base import register
from pretrainx.objectives.image_common import ImageGenerativeObjective


@dataclasses.dataclass(frozen=True)
class Schedule:
    betas: np.ndarray          # float64, (T,)

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    @property
    def alpha_bars(self) -> np.ndarray:
        return np.cumprod(1.0 - self.betas)


def linear_betas(num_steps: int, start: float = 1e-4, end: float = 0.02) -> np.ndarray:
    """Ho et al.'s 1e-4 -> 0.02 for T = 1000; for other T scaled by 1000/T (Nichol & Dhariwal) so
    that alpha_bar at the last step stays near its T=1000 value."""
    scale = 1000.0 / num_steps
    return np.linspace(scale * start, scale * end, num_steps, dtype=np.float64)


def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal (2021): alpha_bar(t) = cos^2(((t/T + s)/(1 + s)) pi/2) / same at 0."""
    f = np.cos((np.arange(num_steps + 1) / num_steps + s) / (1 + s) * np.pi / 2) ** 2
    alpha_bars = f / f[0]
    return np.minimum(1.0 - alpha_bars[1:] / alpha_bars[:-1], max_beta)


def make_schedule(kind: str, num_steps: int = 1000) -> Schedule:
    makers = {"linear": linear_betas, "cosine": cosine_betas}
    if kind not in makers:
        raise UserError(f"unknown beta schedule {kind!r} (config.diffusion.schedule); "
                        f"known {sorted(makers)}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 2:
        raise UserError(f"config.diffusion.timesteps must be an integer >= 2, got {num_steps!r}")
    betas = makers[kind](num_steps)
    if not (np.all(betas > 0) and np.all(betas <= 0.999)):
        # linear betas scale with 1000/T: at T <= 20 the last reaches 1, alpha_bar 0, loss NaN
        raise UserError(f"the {kind} schedule with diffusion.timesteps={num_steps} has betas up "
                        f"to {betas.max():.3g} (must stay at most 0.999): use more timesteps "
                        f"or diffusion.schedule='cosine'")
    return Schedule(betas)


def q_sample(alpha_bars, x0, t, noise):
    """Closed-form forward process: x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) noise."""
    ab = jnp.asarray(alpha_bars, jnp.float32)[t].reshape(-1, *([1] * (x0.ndim - 1)))
    return jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * noise


def v_target(alpha_bar_t, x0, noise):
    """Salimans & Ho's v = sqrt(ab) eps - sqrt(1 - ab) x_0."""
    return jnp.sqrt(alpha_bar_t) * noise - jnp.sqrt(1.0 - alpha_bar_t) * x0


def to_x0_eps(output, x_t, alpha_bar_t, prediction: str):
    """The network's output -> (x_0 estimate, eps estimate)."""
    a, b = jnp.sqrt(alpha_bar_t), jnp.sqrt(1.0 - alpha_bar_t)
    if prediction == "eps":
        return (x_t - b * output) / a, output
    if prediction == "v":
        return a * x_t - b * output, b * x_t + a * output
    raise UserError(f"unknown prediction {prediction!r} (config.diffusion.prediction)")


def ancestral_sample(predict, x_T, rng, schedule: Schedule, *, prediction="eps",
                     variance="beta", clip_x0=True):
    """Ho et al.'s sampler over all T steps: x_{t-1} = posterior mean(x_t, x0_hat) + sigma_t z.
    variance "beta": sigma^2 = beta_t (Ho et al.'s CIFAR choice); "posterior": beta-tilde_t. The
    noise of step t is normal(fold_in(rng, t)), shared with ddim_sample."""
    betas = schedule.betas
    ab = schedule.alpha_bars
    ab_prev = np.append(1.0, ab[:-1])
    posterior_var = betas * (1.0 - ab_prev) / (1.0 - ab)
    if variance not in ("beta", "posterior"):
        raise UserError(f"unknown ancestral variance {variance!r} (sample.variance)")
    sigmas = np.sqrt(betas if variance == "beta" else posterior_var)
    coef_x0 = betas * np.sqrt(ab_prev) / (1.0 - ab)
    coef_xt = (1.0 - ab_prev) * np.sqrt(1.0 - betas) / (1.0 - ab)
    table = {k: jnp.asarray(v, jnp.float32) for k, v in
             dict(ab=ab, sigma=sigmas, cx0=coef_x0, cxt=coef_xt).items()}

    def step(x, t):
        x0, _ = to_x0_eps(predict(x, t.astype(jnp.float32)), x, table["ab"][t], prediction)
        if clip_x0:
            x0 = jnp.clip(x0, -1.0, 1.0)
        mean = table["cx0"][t] * x0 + table["cxt"][t] * x
        z = jax.random.normal(jax.random.fold_in(rng, t), x.shape, x.dtype)
        return mean + jnp.where(t > 0, table["sigma"][t], 0.0) * z, None

    x, _ = jax.lax.scan(step, x_T, jnp.arange(schedule.num_steps - 1, -1, -1))
    return x


def ddim_timesteps(num_steps: int, sample_steps: int) -> np.ndarray:
    """``sample_steps`` evenly spaced steps from 0 to T-1 inclusive (T-1: start from pure noise)."""
    if not 1 <= sample_steps <= num_steps:
        raise UserError(f"ddim steps must be in [1, {num_steps}], got {sample_steps}")
    return np.unique(np.round(np.linspace(0, num_steps - 1, sample_steps)).astype(np.int32))


def ddim_sample(predict, x_T, rng, schedule: Schedule, sample_steps: int, *, eta=0.0,
                prediction="eps", clip_x0=True):
    """Song et al.'s DDIM over a subset of steps; eta = 0 is deterministic, eta = 1 over all
    steps is the ancestral sampler with the posterior variance."""
    times = ddim_timesteps(schedule.num_steps, sample_steps)[::-1]
    ab = schedule.alpha_bars
    ab_t = ab[times]
    ab_prev = np.append(ab[times[1:]], 1.0)       # after the last step: x_0 itself
    sigmas = eta * np.sqrt((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev))
    xs = {k: jnp.asarray(v, jnp.float32) for k, v in
          dict(ab_t=ab_t, ab_prev=ab_prev, sigma=sigmas).items()}
    xs["t"] = jnp.asarray(times, jnp.int32)

    def step(x, s):
        x0, eps = to_x0_eps(predict(x, s["t"].astype(jnp.float32)), x, s["ab_t"], prediction)
        if clip_x0:
            x0 = jnp.clip(x0, -1.0, 1.0)
            eps = (x - jnp.sqrt(s["ab_t"]) * x0) / jnp.sqrt(1.0 - s["ab_t"])
        direction = jnp.sqrt(jnp.maximum(1.0 - s["ab_prev"] - s["sigma"] ** 2, 0.0)) * eps
        z = jax.random.normal(jax.random.fold_in(rng, s["t"]), x.shape, x.dtype)
        return jnp.sqrt(s["ab_prev"]) * x0 + direction + s["sigma"] * z, None

    x, _ = jax.lax.scan(step, x_T, xs)
    return x


def denoising_loss(output, x0, noise, alpha_bar_t, prediction: str):
    """Mean squared error of the prediction against its target (eps, or v)."""
    target = noise if prediction == "eps" else v_target(alpha_bar_t, x0, noise)
    return jnp.mean(jnp.square(output.astype(jnp.float32) - target))


@register("ddpm")
class DDPM(ImageGenerativeObjective):
    section = "diffusion"
    samplers = ("ancestral", "ddim")

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        d = config.diffusion
        self.schedule = make_schedule(d.schedule, d.timesteps)
        self.prediction = d.prediction

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        timesteps = settings.integer(config, "diffusion.timesteps", 2)
        make_schedule(config.diffusion.schedule, timesteps)      # the schedule and its betas
        settings.choice(config, "diffusion.prediction", ("eps", "v"))
        settings.choice(config, "sample.variance", ("beta", "posterior"))
        if config.sample.sampler == "ddim":
            settings.integer(config, "sample.steps", 1, timesteps)

    def model_time(self, t):
        return t

    def loss_fn(self, params, batch, rng, *, train, frozen=None, ctx=None):
        x0 = batch["image"].astype(jnp.float32)
        t_rng, noise_rng, drop_rng, label_rng = jax.random.split(rng, 4)
        t = jax.random.randint(t_rng, (x0.shape[0],), 0, self.schedule.num_steps)
        noise = jax.random.normal(noise_rng, x0.shape, jnp.float32)
        alpha_bars = jnp.asarray(self.schedule.alpha_bars, jnp.float32)
        x_t = q_sample(alpha_bars, x0, t, noise)
        labels = self.training_labels(batch, label_rng) if train else (
            batch["label"].astype(jnp.int32) if self.num_classes else None)
        output = self.apply_model(params, x_t, t.astype(jnp.float32), labels, train=train,
                                  rng=drop_rng)
        loss = denoising_loss(output, x0, noise, alpha_bars[t][:, None, None, None],
                              self.prediction)
        return loss, {"mse": loss}

    def run_sampler(self, predict, noise, rng, sampler, steps):
        s = self.config.sample
        clip = bool(s.clip_x0)
        if sampler == "ancestral":
            return ancestral_sample(predict, noise, rng, self.schedule, prediction=self.prediction,
                                    variance=s.variance, clip_x0=clip)
        return ddim_sample(predict, noise, rng, self.schedule, steps, eta=s.eta,
                           prediction=self.prediction, clip_x0=clip)
