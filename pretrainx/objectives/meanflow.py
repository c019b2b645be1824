"""MeanFlow (Geng, Deng, Bai, Kolter & He, "Mean Flows for One-step Generative Modeling", 2025):
the network learns the average velocity u(z_t, r, t) = 1/(t - r) int_r^t v(z_s, s) ds of the flow
over an interval, so one step z_r = z_t - (t - r) u(z_t, r, t) (eq. 12) crosses it; 1-step
generation is x = eps - u(eps, 0, 1).

Convention (the paper's and flow.py's): t = 0 data, t = 1 noise, z_t = (1 - t) x + t eps,
v = eps - x. The network takes (t, t - r): time and interval, the paper's best positional input
(Table 1c), through the backbone's interval embedding, both unscaled in [0, 1] as in the official
code (meanflow.time_scale = 1): the target contains d_t u, and flow's 1000 t would make the
sinusoidal embedding, and so u, vary ~1000x faster in t (the smoke run diverged with it).

Training target (eq. 10, the "MeanFlow identity" d/dt [(t - r) u] = v integrated):
    u_tgt = v - (t - r) (v d_z u + d_t u),
the total derivative d/dt u(z_t, r, t) along the flow, computed as one Jacobian-vector product
``jax.jvp`` of (z, t, r) -> u with tangent (v, 1, 0) (eq. 8), under stop-gradient (eq. 9).
Loss (Sec. 4.3): per sample the squared L2 error ||u - sg(u_tgt)||^2 (summed over pixels), with
adaptive weight w = 1 / sg(||.||^2 + c)^p (p = 1 is the paper's ImageNet choice, c = 1e-3).

(t, r) sampling: two draws from logit-normal(mean, std), t the larger (the paper's sampler; its
ImageNet setting lognorm(-0.4, 1.0)); or, with meanflow.r_mean/r_std set, t and r from their own
logit-normals and r = min(r, t) (the authors' CIFAR-10 UNet code). Then a fixed share of the rows,
meanflow.equal_fraction (0.75: the paper's "25% r != t"), gets r = t: plain flow matching.

Guidance (Sec. 4.2, eq. 13-21): trained in, so sampling needs one call a step. The target
velocity becomes v~ = w v + k u(z_t, t, t | c) + (1 - w - k) u(z_t, t, t | null) (w = omega, k =
kappa; Appendix: kappa mixes in the conditional prediction), also as the JVP tangent; label-dropped
rows (cfg_drop) keep v. omega = 1, kappa = 0 is plain conditional training.

Config: meanflow.{mean, std, r_mean, r_std, equal_fraction, norm_p, norm_eps, omega, kappa,
cfg_drop, time_scale}; sample.{sampler ("meanflow": u over 1/steps intervals | "euler": r = t, the
instantaneous velocity), steps, guidance (1: the guidance is in the weights)}.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from pretrainx.errors import UserError
from pretrainx.objectives import settings
from pretrainx.objectives.base import register
from pretrainx.objectives.flow import euler_sample, interpolate, interval_sample
from pretrainx.objectives.image_common import ImageGenerativeObjective


def logit_normal(rng, shape, mean: float, std: float):
    return jax.nn.sigmoid(mean + std * jax.random.normal(rng, shape, jnp.float32))


def sample_time_pairs(rng, rows: int, *, mean: float, std: float, equal_fraction: float,
                      r_mean=None, r_std=None):
    """(t, r), each (rows,), with t >= r; the first round(equal_fraction * rows) rows have r = t."""
    t_rng, r_rng = jax.random.split(rng)
    t = logit_normal(t_rng, (rows,), mean, std)
    if r_mean is None:            # the paper's: two draws from one distribution, t the larger
        r = logit_normal(r_rng, (rows,), mean, std)
        t, r = jnp.maximum(t, r), jnp.minimum(t, r)
    else:                         # the CIFAR-10 code's: r from its own distribution, clamped
        r = jnp.minimum(logit_normal(r_rng, (rows,), r_mean, r_std), t)
    equal = jnp.arange(rows) < int(round(equal_fraction * rows))
    return t, jnp.where(equal, t, r)


def meanflow_target(u_fn, z, t, r, velocity):
    """(u, sg(u_tgt)) with u = u_fn(z, t, r) and u_tgt = v - (t - r) du/dt (eq. 10), du/dt the JVP
    of u_fn along tangent (v, 1, 0) (eq. 8). t - r is clipped to [0, 1] as in the official code."""
    u, du_dt = jax.jvp(u_fn, (z, t, r), (velocity, jnp.ones_like(t), jnp.zeros_like(r)))
    span = jnp.clip(t - r, 0.0, 1.0).reshape(-1, *([1] * (z.ndim - 1)))
    return u, jax.lax.stop_gradient(velocity - span * du_dt)


def adaptive_weighted_loss(error_sq_rows, p: float, c: float):
    """mean over rows of ||e||^2 / sg(||e||^2 + c)^p (Sec. 4.3; p = 0 is the plain squared L2)."""
    return jnp.mean(error_sq_rows / jax.lax.stop_gradient((error_sq_rows + c) ** p))


@register("meanflow")
class MeanFlow(ImageGenerativeObjective):
    section = "meanflow"
    samplers = ("meanflow", "euler")
    interval_conditioned = True

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        m = config.meanflow
        self.time_kw = dict(mean=float(m.mean), std=float(m.std),
                            equal_fraction=float(m.equal_fraction),
                            r_mean=m.r_mean, r_std=m.r_std)
        self.norm_p, self.norm_eps = float(m.norm_p), float(m.norm_eps)
        self.omega, self.kappa = float(m.omega), float(m.kappa)
        self.time_scale = float(m.time_scale)
        if (self.omega, self.kappa) != (1.0, 0.0) and not self.num_classes:
            raise UserError("meanflow.omega / kappa (guidance) need a class-conditional model "
                            "(model.num_classes > 0)")

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        m = config.meanflow
        settings.number(config, "meanflow.std", 0.0, low_open=True)
        settings.number(config, "meanflow.equal_fraction", 0.0, 1.0)
        if (m.r_mean is None) != (m.r_std is None):
            raise settings.SettingError("set both config.meanflow.r_mean and r_std, or neither")
        if m.r_std is not None:
            settings.number(config, "meanflow.r_std", 0.0, low_open=True)
        settings.number(config, "meanflow.norm_p", 0.0)
        settings.number(config, "meanflow.norm_eps", 0.0, low_open=True)   # 1 / (err + eps)^p
        settings.number(config, "meanflow.time_scale", 0.0, low_open=True)

    def model_time(self, t):
        return self.time_scale * t

    def guided_velocity(self, params, z_t, t, velocity, cond, labels):
        """v~ = w v + k u(z_t, t, t | c) + (1 - w - k) u(z_t, t, t | null) (eq. 19 and the
        Appendix's kappa); rows whose label was dropped keep v. No gradient flows through it."""
        if (self.omega, self.kappa) == (1.0, 0.0):
            return velocity
        null = jnp.full_like(cond, self.model.null_label)
        zero = jnp.zeros_like(t)
        both = self.apply_model(params, jnp.concatenate([z_t, z_t]), jnp.concatenate([t, t]),
                                jnp.concatenate([cond, null]), train=False,
                                interval=jnp.concatenate([zero, zero]))
        u_cond, u_null = jnp.split(jax.lax.stop_gradient(both), 2)
        guided = (self.omega * velocity + self.kappa * u_cond
                  + (1.0 - self.omega - self.kappa) * u_null)
        dropped = (labels == self.model.null_label).reshape(-1, *([1] * (z_t.ndim - 1)))
        return jnp.where(dropped, velocity, guided)

    def loss_fn(self, params, batch, rng, *, train, frozen=None, ctx=None):
        x = batch["image"].astype(jnp.float32)
        time_rng, noise_rng, drop_rng, label_rng = jax.random.split(rng, 4)
        t, r = sample_time_pairs(time_rng, x.shape[0], **self.time_kw)
        noise = jax.random.normal(noise_rng, x.shape, jnp.float32)
        z_t = interpolate(x, noise, t)
        velocity = noise - x
        labels = self.loss_labels(batch, label_rng, train)
        if labels is not None:
            velocity = self.guided_velocity(params, z_t, t, velocity,
                                            batch["label"].astype(jnp.int32), labels)

        def u_fn(z, t_, r_):
            return self.apply_model(params, z, t_, labels, train=train, rng=drop_rng,
                                    interval=t_ - r_)

        u, u_tgt = meanflow_target(u_fn, z_t, t, r, velocity)
        error_sq = jnp.sum(jnp.square(u.astype(jnp.float32) - u_tgt), axis=tuple(range(1, x.ndim)))
        loss = adaptive_weighted_loss(error_sq, self.norm_p, self.norm_eps)
        # Monitoring: the unweighted error, and the r = t rows' error against the plain velocity
        # eps - x (flow's "mse", comparable across objectives).
        flow_rows = (t == r).astype(jnp.float32)
        flow_sq = jnp.mean(jnp.square(u - (noise - x)), axis=tuple(range(1, x.ndim)))
        return loss, {"mse": jnp.mean(error_sq) / x[0].size,
                      "mse_flow": jnp.sum(flow_rows * flow_sq) / jnp.maximum(flow_rows.sum(), 1.0)}

    def run_sampler(self, predict, noise, rng, sampler, steps):
        del rng                       # deterministic given the initial noise
        if sampler == "meanflow":
            return interval_sample(predict, noise, steps)
        return euler_sample(lambda x, t: predict(x, t, 0.0), noise, steps)
