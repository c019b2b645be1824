"""``run(config, workdir)``: the one training loop every objective goes through.

Per step: host builds batch i (a pure function of (seed, i)), the objective's ``transform``
corrupts it on the host, the batch is sharded over the mesh, and one jitted ``train_step``
(``step.py``: explicit in/out shardings, donated state) updates the state. Metrics of step n are
fetched after step n+1 is dispatched, so the host never stalls the device.

A run starts from its workdir's latest checkpoint when there is one; else from
``config.init_from`` (another run's arrays, ``init_from.py``) when set; else from scratch. It
writes ``config.json`` and ``provenance.json`` (``provenance.py``) at every start.
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

from pretrainx import checkpoint as checkpoint_lib
from pretrainx import data as data_lib
from pretrainx import evaluate, init_from, metrics as metrics_lib, objectives, optim
from pretrainx import provenance
from pretrainx import sharding as sharding_lib
from pretrainx import state as state_lib
from pretrainx.batches import host_batch
from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.data.base import DataState
from pretrainx.step import RNG_IMPLS, train_step

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    pass


@dataclasses.dataclass
class RunResult:
    """What ``run`` returns to callers (tests, sweeps): the final state and the logged history."""
    state: state_lib.TrainState
    history: list            # one dict per logged step, as written to metrics.jsonl
    stopped_early: bool = False


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
    host_batch: object        # (source, index[, step, train]) -> this process's batch, as the loop makes it


def saved_tokenizer(workdir: str | None):
    """The tokenizer a run saved at its first start, when the run has a checkpoint to resume
    (None otherwise): its ids cannot move even if the corpus or the tokenizer library changed."""
    if not workdir or not checkpoint_lib.has_checkpoint(workdir):
        return None                  # a fresh start fits or trains the tokenizer the config says
    path = os.path.join(workdir, tokenizer_lib.FILENAME)
    return tokenizer_lib.load(path) if os.path.exists(path) else None


def build_dataset(config, objective, workdir: str | None = None) -> data_lib.Dataset:
    """The data of ``config`` as ``objective`` asks for it (raw length, fields), with the
    tokenizer ``workdir`` saved when there is one."""
    request = objective.data_request()
    return data_lib.build(config.data, batch_size=config.batch_size,
                          eval_batch_size=config.eval.batch_size, seq_len=request.seq_len,
                          seed=config.seed, fields=request.fields, tokenizer=saved_tokenizer(workdir),
                          special_tokens=request.special_tokens)


def setup(config, workdir: str | None = None) -> Setup:
    """Objective, mesh, data, sharded initial state and the jitted step of ``config``.
    ``workdir``: a run's directory whose saved tokenizer the data should use."""
    objective = objectives.get(config.objective)(config)
    mesh = sharding_lib.make_mesh(config.mesh)
    divisor = sharding_lib.batch_divisor(mesh)
    accum = int(config.optimizer.get("grad_accum", 1))
    rng_impl = config.train.get("rng_impl", "threefry")
    if rng_impl not in RNG_IMPLS:
        raise ValueError(f"unknown train.rng_impl {rng_impl!r} (known: {', '.join(RNG_IMPLS)})")
    if config.batch_size % (divisor * accum):
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the batch-sharded "
                         f"devices ({divisor}) times optimizer.grad_accum ({accum})")
    request = objective.data_request()
    dataset = build_dataset(config, objective, workdir)
    objective.bind_data(dataset)
    tx_factory = lambda p: optim.make_optimizer(config.optimizer, p)[0]
    state, shardings = state_lib.create_train_state(
        objective, tx_factory, seed=config.seed, ema=float(config.optimizer.ema_decay) > 0,
        mesh=mesh, axis_rules=sharding_lib.rules(config.sharding))
    tx, schedule = optim.make_optimizer(config.optimizer, state.params)
    total = int(config.train.steps)
    make_batch = functools.partial(_host_batch, objective=objective, seed=config.seed,
                                   total_steps=total, fields=request.fields)
    example = make_batch(dataset.train, 0)
    objective.check_batch(example)
    batch_shardings = {k: sharding_lib.batch_sharding(mesh, np.ndim(v)) for k, v in example.items()}
    step_fn = jax.jit(
        functools.partial(train_step, objective=objective, tx=tx, grad_accum=accum,
                          ema_decay=float(config.optimizer.ema_decay), total_steps=total,
                          rng_impl=rng_impl),
        in_shardings=(shardings, batch_shardings), out_shardings=(shardings, None), donate_argnums=0)
    return Setup(objective, mesh, dataset, state, shardings, step_fn, schedule, make_batch)


def _host_batch(source, index, step=None, train=True, *, objective, seed, total_steps, fields):
    return host_batch(source, objective, index, seed, step=step, total_steps=total_steps,
                      train=train, fields=fields)


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
    built = setup(config, workdir)
    objective, mesh, dataset, shardings = built.objective, built.mesh, built.dataset, built.shardings
    state, built.state = built.state, None   # one reference, so a restore frees the fresh init
    step_fn, make_batch = built.step_fn, built.host_batch
    if dataset.tokenizer is not None and jax.process_index() == 0:
        dataset.tokenizer.save(workdir)

    ckpt = checkpoint_lib.Checkpointer(workdir, config.checkpoint)
    data_state = DataState()
    restored = ckpt.restore(state_lib.abstract_state(state, shardings))
    if restored is not None:        # resume wins over init_from: the run's own state is newer
        state, data_state, restored_step = restored
        log.info("resumed from step %d (next batch %d)", restored_step, data_state.next_index)
    else:
        for source in init_from.InitFrom.all_from_config(config):   # none: from scratch
            state = init_from.apply(state, objective, source)
    provenance.write(workdir, restored[2] if restored else None)

    first = make_batch(dataset.train, data_state.next_index)
    evaluator = evaluate.Evaluator(objective, config, mesh, dataset, workdir)

    writer = metrics_lib.MetricWriter(workdir, tensorboard=True)
    total = int(config.train.steps)
    start = int(jax.device_get(state.step))
    # The whole LR curve, computed once, is the one source of "train/lr": evaluating the schedule
    # on the device each step would wait for the step queued before it and stall the pipeline.
    host_lrs = np.asarray(jax.device_get(jax.jit(jax.vmap(built.schedule))(jnp.arange(total))))
    tokens_per_step = (first[objective.tokens_key].size * jax.process_count()
                       if objective.tokens_key in first else None)
    flops = objective.flops_per_batch(first)           # of this process's rows
    flops_per_step = flops * jax.process_count() if flops else None
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
        u = metrics_lib.mfu(flops_per_step, rate, mesh.size)
        if u is not None:
            scalars["train/mfu"] = u
        writer.write(pending_step, scalars)
        history.append({"step": pending_step, **scalars})
        post = {"loss": f"{scalars['train/loss']:.4f}"}
        if tokens_per_step:
            post["tok/s"] = f"{scalars['train/tokens_per_sec']:.3g}"
        if flops_per_step:
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
                    batch = make_batch(dataset.train, data_state.next_index)
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
                                            final=done == total, aux=state.aux)
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
