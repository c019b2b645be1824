"""Shortcut models (Frans, Hafner, Levine & Abbeel, "One Step Diffusion via Shortcut Models",
ICLR 2025): one flow network s(x_t, t, d) conditioned on the step size d, trained so that one step
of size 2d lands where two steps of size d do; it then samples in 1, 2, 4, ... steps.

Convention (flow.py's): t = 0 is data, t = 1 noise, x_t = (1 - t) x_0 + t eps, and sampling runs
from t = 1 down to 0. The paper's t runs the other way (noise -> data), so its step
x_{t+d} = x_t + s d is here x_{t-d} = x_t - d s(x_t, t, d).

Training batch (the paper's Algorithm 1; eq. 5 is the sum of the two squared errors):
  * flow-matching rows (1 - k of the batch): d = 0 and the empirical velocity target eps - x_0
    (eq. 3: at d = 0 the shortcut is the flow's instantaneous velocity); t on the 1/M grid.
  * self-consistency rows (k of the batch): 2d in {1, 1/2, ..., 2/M}, an equal number of rows per
    power of two (as the released code's batch layout), t on the grid of 2d, and the target
        s(x_t, t, 2d) <- sg[(s(x_t, t, d) + s(x'_{t-d}, t - d, d)) / 2],  x'_{t-d} = x_t - d s(x_t, t, d)
    (eq. 4), made by the network itself under stop-gradient.
  M = 128 (the paper's smallest step 1/128). The smallest step d = 1/M is queried as d = 0, so the
  finest shortcut is built from two steps of the flow itself (the released code gives d = 1/M
  and the flow-matching rows the same embedding).
k: 1/4 by default (config). The released code's default layout is 1/8 (bootstrap_every = 8); it
also clips x'_{t-d} and the target to [-4, 4], kept here as a guard against blow-ups, and takes the
targets from the EMA weights, which today's objective contract does not hand to ``loss_fn`` (the
live weights under stop-gradient are Algorithm 1's choice).

Guidance (the released code's ``bootstrap_cfg``, used for ImageNet): with shortcut.guidance = w != 1
the self-consistency targets of the smallest level use the guided flow uncond + w (cond - uncond)
at d = 0, so every larger step learns the guided flow's shortcuts and sampling then runs at
guidance 1 (one network call a step). Label dropout (cfg_drop) applies to the flow-matching rows.

Config: shortcut.{max_steps (M), bootstrap_fraction (k), guidance, cfg_drop};
sample.{sampler ("shortcut": d = 1/steps | "euler": the d = 0 flow), steps, guidance}.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.objectives import settings
from pretrainx.objectives.base import register
from pretrainx.objectives.flow import MODEL_TIME_SCALE, euler_sample, interpolate, interval_sample
from pretrainx.objectives.image_common import ImageGenerativeObjective

CLIP = 4.0      # the released code's bound on the intermediate point and the target


def bootstrap_step_sizes(num_rows: int, max_steps: int) -> np.ndarray:
    """The 2d of each self-consistency row: 1, 1/2, ..., 2/M in turn (round robin from the largest
    step), so every power of two gets an equal share of rows. A host constant: (num_rows,)."""
    levels = int(math.log2(max_steps))          # 2d = 2^-j for j = 0 .. log2(M) - 1
    return 0.5 ** (np.arange(num_rows) % levels).astype(np.float32)


def grid_times(rng, step: jax.Array) -> jax.Array:
    """t uniform on {step, 2 step, ..., 1}: a step of ``step`` from t stays in [0, 1]."""
    count = jnp.round(1.0 / step).astype(jnp.int32)
    return (jax.random.randint(rng, step.shape, 0, count) + 1).astype(jnp.float32) * step


def self_consistency_target(predict, x_t, t, d):
    """sg[(s(x_t, t, d) + s(x'_{t-d}, t - d, d)) / 2] (eq. 4): the one-step velocity of size 2d that
    lands where two steps of size d land. ``predict(x, t, d)``; t and d of shape (B,)."""
    d_b = d.reshape(-1, *([1] * (x_t.ndim - 1)))
    first = predict(x_t, t, d)
    x_mid = jnp.clip(x_t - d_b * first, -CLIP, CLIP)
    second = predict(x_mid, t - d, d)
    return jax.lax.stop_gradient(jnp.clip((first + second) / 2, -CLIP, CLIP))


@register("shortcut")
class ShortcutModel(ImageGenerativeObjective):
    section = "shortcut"
    samplers = ("shortcut", "euler")
    interval_conditioned = True

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        s = config.shortcut
        self.max_steps = int(s.max_steps)
        self.bootstrap_fraction = float(s.bootstrap_fraction)
        self.guidance = float(s.guidance)

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        max_steps = settings.integer(config, "shortcut.max_steps", 2)
        if max_steps & (max_steps - 1):
            raise settings.SettingError(f"config.shortcut.max_steps must be a power of two, "
                                        f"got {max_steps}")
        settings.number(config, "shortcut.bootstrap_fraction", 0.0, 1.0, high_open=True)
        settings.number(config, "shortcut.guidance", 0.0)

    def model_time(self, t):
        return MODEL_TIME_SCALE * t

    def is_flow_step(self, d):
        """d <= 1/M: the smallest step, which is the flow itself (queried as d = 0)."""
        return d * self.max_steps <= 1.0 + 1e-6

    def model_interval(self, d):
        return MODEL_TIME_SCALE * jnp.where(self.is_flow_step(d), 0.0, d)

    def teacher(self, params, labels):
        """s(x, t, d) for the targets: no dropout; at the smallest step (queried at d = 0) the
        guided flow uncond + w (cond - uncond) when shortcut.guidance = w != 1."""
        def predict(x, t, d):
            if labels is None or self.guidance == 1.0:
                return self.apply_model(params, x, t, labels, train=False, interval=d)
            null = jnp.full_like(labels, self.model.null_label)
            both = self.apply_model(params, jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                                    jnp.concatenate([labels, null]), train=False,
                                    interval=jnp.concatenate([d, d]))
            cond, uncond = jnp.split(both, 2)
            w = jnp.where(self.is_flow_step(d), self.guidance, 1.0)
            return uncond + w.reshape(-1, *([1] * (x.ndim - 1))) * (cond - uncond)
        return predict

    def loss_fn(self, params, batch, rng, *, train, frozen=None, ctx=None):
        x0 = batch["image"].astype(jnp.float32)
        rows = x0.shape[0]
        n_boot = int(rows * self.bootstrap_fraction)
        noise_rng, boot_rng, flow_rng, drop_rng, label_rng = jax.random.split(rng, 5)
        noise = jax.random.normal(noise_rng, x0.shape, jnp.float32)
        # rows [0, n_boot): self-consistency at 2d; rows [n_boot, rows): flow matching at d = 0
        two_d = jnp.asarray(bootstrap_step_sizes(n_boot, self.max_steps))
        t = jnp.concatenate([grid_times(boot_rng, two_d),
                             grid_times(flow_rng, jnp.full((rows - n_boot,), 1.0 / self.max_steps))])
        x_t = interpolate(x0, noise, t)
        labels = self.loss_labels(batch, label_rng, train)
        if labels is not None:    # the self-consistency rows keep their labels (released code)
            labels = jnp.concatenate([batch["label"][:n_boot].astype(jnp.int32), labels[n_boot:]])
        target = noise - x0
        if n_boot:
            teacher = self.teacher(params, None if labels is None else labels[:n_boot])
            target = jnp.concatenate([self_consistency_target(teacher, x_t[:n_boot], t[:n_boot],
                                                              two_d / 2), target[n_boot:]])
        interval = jnp.concatenate([two_d, jnp.zeros((rows - n_boot,), jnp.float32)])
        pred = self.apply_model(params, x_t, t, labels, train=train, rng=drop_rng,
                                interval=interval)
        per_row = jnp.mean(jnp.square(pred.astype(jnp.float32) - target),
                           axis=tuple(range(1, x0.ndim)))
        metrics = {"mse_flow": jnp.mean(per_row[n_boot:])}
        if n_boot:
            metrics["mse_self_consistency"] = jnp.mean(per_row[:n_boot])
        return jnp.mean(per_row), metrics     # eq. 5: one mean over the whole batch

    def run_sampler(self, predict, noise, rng, sampler, steps):
        del rng                       # deterministic given the initial noise
        if sampler == "shortcut":
            return interval_sample(predict, noise, steps)
        return euler_sample(lambda x, t: predict(x, t, 0.0), noise, steps)
