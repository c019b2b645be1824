"""``run(config, workdir)``: the one training loop every objective goes through.

Per step: host builds batch i (a pure function of (seed, i)), the objective's ``transform``
corrupts it on the host, the batch is sharded over the mesh, and one jitted ``train_step``
(explicit in/out shardings, donated state) updates the state. Metrics of step n are fetched after
step n+1 is dispatched, so the host never stalls the device.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pretrainx import checkpoint as checkpoint_lib
from pretrainx import data as data_lib
from pretrainx import evaluate, metrics as metrics_lib, objectives, optim
from pretrainx import sharding as sharding_lib
from pretrainx import state as state_lib
from pretrainx.data.base import DataState, batch_rng

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    pass


@dataclasses.dataclass
class RunResult:
    """What ``run`` returns to callers (tests, sweeps): the final state and the logged history."""
    state: state_lib.TrainState
    history: list            # one dict per logged step, as written to metrics.jsonl
    stopped_early: bool = False


def train_step(state, batch, *, objective, tx, grad_accum: int, ema_decay: float):
    rng = jax.random.fold_in(state.rng, state.step)

    def loss_on(params, micro_batch, micro_rng):
        return objective.loss_fn(params, micro_batch, micro_rng, train=True, frozen=state.frozen)

    grad_fn = jax.value_and_grad(loss_on, has_aux=True)
    if grad_accum == 1:
        (loss, metrics), grads = grad_fn(state.params, batch, rng)
    else:
        # Micro-batch k takes rows k, k+A, k+2A, ...: every device keeps a share of every
        # micro-batch, so accumulation moves no data between devices.
        split = lambda x: x.reshape(x.shape[0] // grad_accum, grad_accum, *x.shape[1:]).swapaxes(0, 1)
        micro = jax.tree.map(split, batch)

        def body(carry, xs):
            mb, k = xs
            (l, m), g = grad_fn(state.params, mb, jax.random.fold_in(rng, k))
            return jax.tree.map(jnp.add, carry, (l, m, g)), None

        (l0, m0), g0 = jax.eval_shape(grad_fn, state.params, jax.tree.map(lambda x: x[0], micro), rng)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), (l0, m0, g0))
        (loss, metrics, grads), _ = jax.lax.scan(body, zeros, (micro, jnp.arange(grad_accum)))
        loss, metrics, grads = jax.tree.map(lambda x: x / grad_accum, (loss, metrics, grads))
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = state.ema_params
    if ema is not None:
        ema = state_lib.update_ema(ema, params, ema_decay)
    metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads)}
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema)
    return new_state, metrics


def host_batch(source, objective, index: int, seed: int):
    """Batch ``index`` for this process, after the objective's host-side transform."""
    batch = source.get_batch(index, (jax.process_index(), jax.process_count()))
    return objective.transform(batch, batch_rng(seed, index, stream=7))


def write_config(config, workdir: str) -> None:
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json(indent=2))


class _SigtermFlag:
    """SIGTERM (a preemption notice) sets a flag; the loop saves and exits at the step boundary."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:      # not the main thread: leave signals alone
            self._previous = None
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


@dataclasses.dataclass
class Setup:
    """Everything a loop (or a benchmark) needs, built from a config."""
    objective: objectives.Objective
    mesh: jax.sharding.Mesh
    dataset: data_lib.Dataset
    state: state_lib.TrainState
    shardings: object
    step_fn: object           # jitted (state, batch) -> (state, metrics); donates state
    schedule: object          # step -> learning rate


def setup(config) -> Setup:
    objective = objectives.get(config.objective)(config)
    mesh = sharding_lib.make_mesh(config.mesh)
    divisor = sharding_lib.batch_divisor(mesh)
    accum = int(config.optimizer.get("grad_accum", 1))
    if config.batch_size % (divisor * accum):
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the batch-sharded "
                         f"devices ({divisor}) times optimizer.grad_accum ({accum})")
    dataset = data_lib.build(config.data, batch_size=config.batch_size,
                             eval_batch_size=config.eval.batch_size,
                             seq_len=config.data.get("seq_len"), seed=config.seed)
    objective.bind_data(dataset)
    tx_factory = lambda p: optim.make_optimizer(config.optimizer, p)[0]
    state, shardings = state_lib.create_train_state(
        objective, tx_factory, seed=config.seed, ema=float(config.optimizer.ema_decay) > 0,
        mesh=mesh, axis_rules=sharding_lib.rules(config.sharding))
    tx, schedule = optim.make_optimizer(config.optimizer, state.params)
    example = host_batch(dataset.train, objective, 0, config.seed)
    objective.check_batch(example)
    batch_shardings = {k: sharding_lib.batch_sharding(mesh, v.ndim) for k, v in example.items()}
    step_fn = jax.jit(
        functools.partial(train_step, objective=objective, tx=tx, grad_accum=accum,
                          ema_decay=float(config.optimizer.ema_decay)),
        in_shardings=(shardings, batch_shardings), out_shardings=(shardings, None), donate_argnums=0)
    return Setup(objective, mesh, dataset, state, shardings, step_fn, schedule)


def run(config, workdir: str, *, stop_after: int | None = None, on_eval=None) -> RunResult:
    """Train ``config`` in ``workdir``, resuming from its latest checkpoint if there is one.

    ``stop_after``: leave the loop after that many steps of this invocation without a final save
    (as a crash would); tests use it to check exact resume.
    ``on_eval(step, scalars)``: called after each eval, once that step's checkpoints are queued; it
    may raise (a sweep's pruner stops a trial so) and the saves still land before the exception
    leaves ``run``.
    """
    os.makedirs(workdir, exist_ok=True)
    write_config(config, workdir)
    built = setup(config)
    objective, mesh, dataset, shardings = built.objective, built.mesh, built.dataset, built.shardings
    state, built.state = built.state, None   # one reference, so a restore frees the fresh init
    step_fn = built.step_fn
    if dataset.tokenizer is not None and jax.process_index() == 0:
        dataset.tokenizer.save(workdir)

    ckpt = checkpoint_lib.Checkpointer(workdir, config.checkpoint)
    data_state = DataState()
    restored = ckpt.restore(state_lib.abstract_state(state, shardings))
    if restored is not None:
        state, data_state, restored_step = restored
        log.info("resumed from step %d (next batch %d)", restored_step, data_state.next_index)

    first = host_batch(dataset.train, objective, data_state.next_index, config.seed)
    evaluator = evaluate.Evaluator(objective, config, mesh, dataset, workdir)

    writer = metrics_lib.MetricWriter(workdir, tensorboard=True)
    total = int(config.train.steps)
    start = int(jax.device_get(state.step))
    # The whole LR curve, computed once, is the one source of "train/lr": evaluating the schedule
    # on the device each step would wait for the step queued before it and stall the pipeline.
    host_lrs = np.asarray(jax.device_get(jax.jit(jax.vmap(built.schedule))(jnp.arange(total))))
    tokens_per_step = (first[objective.tokens_key].size * jax.process_count()
                       if objective.tokens_key in first else None)
    flops_per_token = objective.flops_per_token() if tokens_per_step else None
    progress = metrics_lib.Progress(total, start, bool(config.train.get("progress", True)))
    clock = metrics_lib.Throughput(start)
    history, pending, stopped_early, batch = [], None, False, first
    log_every = int(config.train.log_every)
    last_saved = restored[2] if restored else None
    started = time.perf_counter()   # "time/elapsed_s": wall seconds of this process's loop

    def flush(pending_step, pending_metrics):
        scalars = {f"train/{k}": float(v) for k, v in jax.device_get(pending_metrics).items()}
        if not math.isfinite(scalars["train/loss"]):
            raise NonFiniteLossError(
                f"loss is {scalars['train/loss']} at step {pending_step}; stopped without saving "
                f"(last good checkpoint: step {last_saved}). Lower the learning rate or check the data.")
        scalars["train/lr"] = float(host_lrs[pending_step - 1])   # the LR that step used
        rate = clock.measure(pending_step)
        scalars["train/steps_per_sec"] = rate
        scalars["time/elapsed_s"] = time.perf_counter() - started
        if tokens_per_step:
            scalars["train/tokens_per_sec"] = rate * tokens_per_step
            u = metrics_lib.mfu(flops_per_token, rate * tokens_per_step, mesh.size)
            if u is not None:
                scalars["train/mfu"] = u
        writer.write(pending_step, scalars)
        history.append({"step": pending_step, **scalars})
        post = {"loss": f"{scalars['train/loss']:.4f}"}
        if tokens_per_step:
            post["tok/s"] = f"{scalars['train/tokens_per_sec']:.3g}"
            post["mfu"] = f"{scalars['train/mfu']:.1%}" if "train/mfu" in scalars else "n/a"
        progress.update(pending_step, post)

    try:
        with _SigtermFlag() as sigterm:
            for step in range(start, total):
                state, step_metrics = step_fn(state, sharding_lib.put_batch(batch, mesh))
                data_state = DataState(data_state.next_index + 1)
                done = step + 1
                if pending is not None:
                    flush(*pending)
                    pending = None
                if done % log_every == 0 or done == total:
                    pending = (done, step_metrics)
                else:   # the learning rate every step; logged steps get it in flush
                    writer.write(done, {"train/lr": float(host_lrs[step])})
                if done < total:   # prepare the next batch while the device works on this one
                    batch = host_batch(dataset.train, objective, data_state.next_index, config.seed)
                if stop_after is not None and done - start >= stop_after:
                    stopped_early = True
                    break
                eval_now = config.eval.every and (done % int(config.eval.every) == 0 or done == total)
                save_now = done % ckpt.every == 0 or done == total or sigterm.raised
                if eval_now or save_now:   # never evaluate or save a state whose loss was not checked
                    if pending is not None:   # this step was logged: flush checks its loss
                        flush(*pending)
                        pending = None
                    elif not math.isfinite(float(jax.device_get(step_metrics["loss"]))):
                        flush(done, step_metrics)   # raises NonFiniteLossError: nothing is saved
                if eval_now:
                    eval_started = time.perf_counter()
                    scalars = evaluator.run(state.eval_params(), state.frozen, done,
                                            final=done == total)
                    scalars["time/eval_s"] = time.perf_counter() - eval_started
                    scalars["time/elapsed_s"] = time.perf_counter() - started
                    writer.write(done, scalars)
                    history.append({"step": done, **scalars})
                    # The train loss is measured before the update; a step can still wreck the
                    # weights. A non-finite validation loss stops the run like a train NaN.
                    for key in {"val/loss", ckpt.best_metric} & scalars.keys():
                        if not math.isfinite(scalars[key]):
                            raise NonFiniteLossError(
                                f"{key} is {scalars[key]} at step {done}; stopped without saving "
                                f"(last good checkpoint: step {last_saved})")
                    progress.write(f"step {done}: " + ", ".join(
                        f"{k}={v:.4f}" for k, v in scalars.items() if k.startswith("val/")))
                    ckpt.save_best(done, state, data_state, scalars)
                if save_now:
                    ckpt.save(done, state, data_state)
                    last_saved = done
                if eval_now and on_eval is not None:
                    on_eval(done, scalars)
                if sigterm.raised:
                    progress.write(f"SIGTERM: saved step {done} and stopping")
                    stopped_early = True
                    break
            if pending is not None:
                flush(*pending)
    finally:
        # Saves already dispatched hold good states: let them land even when the loop raised.
        # A failed save raises from wait(); the writers are closed (TensorBoard flushed) anyway.
        try:
            ckpt.wait()
        finally:
            progress.close()
            writer.close()
            ckpt.close()
    return RunResult(state=state, history=history, stopped_early=stopped_early)


def load_config_json(workdir: str):
    """The resolved config a run wrote, for ``sample`` / ``eval`` on that workdir."""
    import ml_collections
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no config.json in workdir {workdir!r}: is it a pretrainx run?")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))
