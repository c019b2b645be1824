"""The jitted step: ``train_step(state, batch) -> (state, metrics)`` and the validation step, both
pure functions of their arguments and built only from the objective's contract (objectives/base.py).

Weighted means: a ``loss_fn`` may put the count its means are over in ``metrics[DENOMINATOR]``.
Micro-batches of one step and validation batches are pooled weighted by it,

    pooled = sum_k w_k * mean_k / sum_k w_k,

so the loss and gradient of a step equal those of the token mean over all its tokens however the
tokens fall into micro-batches (padding, packing, 15 % masking).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from pretrainx.core import sharding as sharding_lib, state as state_lib
from pretrainx.data import rng as streams
from pretrainx.errors import UserError
from pretrainx.objectives.base import DENOMINATOR, StepContext


def split_denominator(metrics: dict):
    """(metrics without the denominator, the denominator as float32; 1 when absent)."""
    metrics = dict(metrics)
    weight = metrics.pop(DENOMINATOR, None)
    return metrics, jnp.asarray(1.0 if weight is None else weight, jnp.float32)


def micro_batches(batch, num: int):
    """``num`` micro-batches stacked on a new leading axis. Micro-batch k takes rows k, k+num,
    k+2num, ...: every device keeps a share of every micro-batch, so no data moves."""
    split = lambda x: x.reshape(x.shape[0] // num, num, *x.shape[1:]).swapaxes(0, 1)
    return jax.tree.map(split, batch)


def weighted_loss_and_grad(loss_fn, params, batch, rng, grad_accum: int):
    """(loss, metrics, grads) of ``loss_fn(params, batch, rng) -> (loss, metrics)`` over
    ``grad_accum`` micro-batches, each weighted by its denominator (micro-batch k uses
    fold_in(rng, k); a single batch uses rng)."""
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if grad_accum == 1:
        (loss, metrics), grads = grad_fn(params, batch, rng)
        metrics, _ = split_denominator(metrics)
        return loss, metrics, grads

    def weighted(mb, k):
        (loss, metrics), grads = grad_fn(params, mb, jax.random.fold_in(rng, k))
        metrics, w = split_denominator(metrics)
        return jax.tree.map(lambda x: (w * x).astype(x.dtype), (loss, metrics, grads)), w

    def body(carry, xs):
        total, total_w = carry
        terms, w = weighted(*xs)
        return (jax.tree.map(jnp.add, total, terms), total_w + w), None

    micro = micro_batches(batch, grad_accum)
    shapes = jax.eval_shape(weighted, jax.tree.map(lambda x: x[0], micro), 0)[0]
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    (total, total_w), _ = jax.lax.scan(body, (zeros, jnp.float32(0.0)),
                                       (micro, jnp.arange(grad_accum)))
    total_w = jnp.where(total_w > 0, total_w, 1.0)      # an all-padding step: zeros, not NaN
    return jax.tree.map(lambda x: (x / total_w).astype(x.dtype), total)


class Updater:
    """What ``Objective.update`` gets: the loss's gradient and the optimiser, bound to one step.

    ``model_params(params)``: the objective's tree the loss sees for the trained ``params``
    (``TrainState.model_params``: LoRA's merge; the identity without LoRA). Gradients and
    updates are of ``params`` themselves."""

    def __init__(self, objective, tx, frozen, ctx: StepContext, grad_accum: int = 1,
                 model_params=lambda params: params):
        self.objective, self.tx, self.frozen, self.ctx = objective, tx, frozen, ctx
        self.grad_accum, self.model_params = grad_accum, model_params

    def loss_fn(self, params, batch, rng):
        return self.objective.loss_fn(self.model_params(params), batch, rng, train=True,
                                      frozen=self.frozen, ctx=self.ctx)

    def loss_and_grad(self, params, batch, rng, grad_accum: int | None = None):
        """(loss, metrics, grads), pooled over ``grad_accum`` micro-batches (default: the
        config's ``optimizer.grad_accum``) weighted by their denominators."""
        return weighted_loss_and_grad(self.loss_fn, params, batch, rng,
                                      self.grad_accum if grad_accum is None else grad_accum)

    def apply(self, params, opt_state, grads):
        """One optimiser update: (params, opt_state) after ``grads``."""
        updates, opt_state = self.tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    @staticmethod
    def norm(grads):
        return optax.tree.norm(grads)


RNG_IMPLS = ("threefry", "rbg", "unsafe_rbg")


def step_key(base_rng, step, impl: str = "threefry"):
    """The key of one train step: ``fold_in(base, step)``, as threefry (default) or re-wrapped
    for XLA's RngBitGenerator ("rbg" / "unsafe_rbg"), which makes dropout's many random bits far
    cheaper on GPUs. The re-wrapped key is a pure function of (base, step) too, so resume stays
    exact; its bits differ from threefry's, and may differ between mesh shapes."""
    rng = jax.random.fold_in(base_rng, step)
    if impl == "threefry":
        return rng
    if impl not in RNG_IMPLS:
        raise UserError(f"unknown train.rng_impl {impl!r} (known: {', '.join(RNG_IMPLS)})")
    data = jax.random.key_data(rng) if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key) else rng
    return jax.random.wrap_key_data(jnp.concatenate([data, data]), impl=impl)


def train_step(state, batch, *, objective, tx, grad_accum: int, ema_decay: float,
               total_steps: int = 0, rng_impl: str = "threefry"):
    rng = step_key(state.rng, state.step, rng_impl)
    ctx = StepContext(step=state.step, aux=state.aux, total_steps=total_steps, train=True)
    batch = objective.prepare(state.model_params(), state.frozen, batch,
                              jax.random.fold_in(rng, streams.PREPARE), ctx)
    updater = Updater(objective, tx, state.frozen, ctx, grad_accum, state.model_params)
    params, opt_state, metrics = objective.update(state.params, state.opt_state, batch, rng, ctx,
                                                  updater)
    metrics = objective.finalize_metrics(dict(metrics))
    aux = objective.update_aux(state.aux, metrics, ctx)
    ema = state.ema_params
    if ema is not None:
        ema = state_lib.update_ema(ema, params, ema_decay)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              ema_params=ema, aux=aux)
    return new_state, metrics


def steps_per_dispatch(step_fn, k: int, *, state_shardings=None, batch_shardings=None):
    """Up to ``k`` train steps in one dispatch: ``(state, batches, n) -> (state, metrics of step
    n)``, every leaf of ``batches`` stacked ``k`` deep on a new leading axis, of which the first
    ``n`` (1 <= n <= k, a traced count) are trained on. One compiled program serves every chunk
    length, so a run's steps all go through the same loop body whether a chunk is cut short by a
    log, eval or save step or by a resume. ``step_fn`` may be the jitted step (inlined here);
    ``batch_shardings``: those of one batch, given the extra leading axis here."""
    def run(state, batches, n):
        pick = lambda i: jax.tree.map(lambda b: jax.lax.dynamic_index_in_dim(b, i, keepdims=False),
                                      batches)
        shapes = jax.eval_shape(step_fn, state, pick(0))[1]
        metrics = jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), shapes)
        return jax.lax.fori_loop(0, n, lambda i, carry: step_fn(carry[0], pick(i)),
                                 (state, metrics))
    if batch_shardings is None:
        return jax.jit(run, donate_argnums=0)
    stacked = jax.tree.map(sharding_lib.stacked, batch_shardings)
    return jax.jit(run, donate_argnums=0, in_shardings=(state_shardings, stacked, None),
                   out_shardings=(state_shardings, None))


def eval_step(params, frozen, aux, batch, rng, step, *, objective, total_steps: int = 0):
    """The objective's loss on one validation batch: metrics with "loss" and the denominator
    (1 when the objective gives none), for the caller to pool."""
    ctx = StepContext(step=jnp.asarray(step, jnp.int32), aux=aux, total_steps=total_steps,
                      train=False)
    batch = objective.prepare(params, frozen, batch, jax.random.fold_in(rng, streams.PREPARE), ctx)
    loss, metrics = objective.loss_fn(params, batch, rng, train=False, frozen=frozen, ctx=ctx)
    metrics, weight = split_denominator(metrics)
    return {**metrics, "loss": loss, DENOMINATOR: weight}
