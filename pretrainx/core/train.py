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
import logging
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.core import checkpoint as checkpoint_lib
from pretrainx.config import base as config_base, check as config_check
from pretrainx import data as data_lib
from pretrainx import objectives
from pretrainx.core import evaluate, init_from
from pretrainx.run import metrics as metrics_lib
from pretrainx.core import optim
from pretrainx.run import preemption, provenance, record as run_record, lock as workdir_lock
from pretrainx.core import sharding as sharding_lib, state as state_lib
from pretrainx.core.batches import host_batch
from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.data.base import DataState
from pretrainx.core.step import RNG_IMPLS, train_step

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    pass


class NonFiniteStateError(NonFiniteLossError):
    """The parameters (or optimiser state) are no longer finite: such a state is never saved."""


@dataclasses.dataclass
class RunResult:
    """What ``run`` returns to callers (tests, sweeps): the final state and the logged history."""
    state: state_lib.TrainState
    history: list            # one dict per logged step, as written to metrics.jsonl
    stopped_early: bool = False
    preempted: bool = False   # stopped by SIGTERM after saving (``pretrainx train`` exits 75)


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
    config = config_base.with_defaults(config)    # a field the config lacks reads as the base's
    config_check.check_values(config)
    objective = objectives.get(config.objective)(config)
    mesh = sharding_lib.make_mesh(config.mesh)
    divisor = sharding_lib.batch_divisor(mesh)
    config_check.check_eval_batch(config, divisor, jax.process_count())
    accum = int(config.optimizer.grad_accum)
    rng_impl = config.train.rng_impl
    if rng_impl not in RNG_IMPLS:
        raise ValueError(f"unknown train.rng_impl {rng_impl!r} (known: {', '.join(RNG_IMPLS)})")
    if config.batch_size % (divisor * accum):
        raise ValueError(f"config.batch_size {config.batch_size} must be divisible by the "
                         f"batch-sharded devices ({divisor}) times optimizer.grad_accum ({accum})")
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

    Before anything in the workdir is rewritten: the workdir is locked (one writer), relative
    paths are made absolute, the values are checked, and a resume's config is compared with the
    saved one (``run_record.py``).
    """
    workdir_lock.prepare(workdir)
    with workdir_lock.WorkdirLock(workdir):
        config = config_check.resolve_paths(config_base.with_defaults(config))
        return _run_locked(config, workdir, stop_after, on_eval)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _restore_or_init(ckpt, state, shardings, objective, config, workdir: str):
    """(state, data state, (state, data state, step) restored or None): the newest readable
    checkpoint; else ``init_from`` when set; else the fresh ``state``."""
    data_state = DataState()
    restored = ckpt.restore(state_lib.abstract_state(state, shardings))
    if restored is not None:        # resume wins over init_from: the run's own state is newer
        state, data_state, restored_step = restored
        log.info("resumed from step %d (next batch %d)", restored_step, data_state.next_index)
    else:
        for source in init_from.InitFrom.all_from_config(config):   # none: from scratch
            state = init_from.apply(state, objective, source)
    total = int(config.train.steps)
    if restored is not None and restored[2] > total:
        # A run asked to stop before where it already is cannot be honoured (it exited 0 having
        # done nothing): refused before its record is rewritten.
        raise config_check.ConfigError(
            f"{workdir} holds a run at step {restored[2]}, past train.steps={total}: nothing to "
            f"train (raise train.steps to go on)")
    if restored is not None and restored[2] == total:   # a rerun of a finished run: said
        log.warning("the run in %s has already trained its %d steps: nothing to do (raise "
                    "train.steps to go on)", workdir, total)
    return state, data_state, restored


def _run_locked(config, workdir: str, stop_after, on_eval) -> RunResult:
    changes = (run_record.check_resume(workdir, config)
               if checkpoint_lib.has_checkpoint(workdir) else {})
    built = setup(config, workdir)
    objective, mesh, dataset, shardings = built.objective, built.mesh, built.dataset, built.shardings
    state, built.state = built.state, None   # one reference, so a restore frees the fresh init
    step_fn, make_batch = built.step_fn, built.host_batch

    ckpt = checkpoint_lib.Checkpointer(workdir, config.checkpoint)
    try:
        state, data_state, restored = _restore_or_init(ckpt, state, shardings, objective, config,
                                                       workdir)
    except BaseException:
        ckpt.close()       # no manager left running behind the error the user reads
        raise
    # The run's record is rewritten only now, once the config and the restore are known good.
    run_record.trim_metrics(workdir, restored[2] if restored else 0)
    run_record.write_config(config, workdir)
    provenance.write(workdir, restored[2] if restored else None, config_changes=changes)
    if dataset.tokenizer is not None and jax.process_index() == 0:
        dataset.tokenizer.save(workdir)

    first = make_batch(dataset.train, data_state.next_index)
    evaluator = evaluate.Evaluator(objective, config, mesh, dataset, workdir)
    if config.eval.every and dataset.val is None:
        log.warning("no validation data (data.val_fraction is 0 or the split too short): evals "
                    "report no val/ metrics")

    total = int(config.train.steps)
    start = int(jax.device_get(state.step))
    writer = metrics_lib.MetricWriter(workdir, tensorboard=True, purge_step=start + 1 if start else None)
    # The whole LR curve, computed once, is the one source of "train/lr": evaluating the schedule
    # on the device each step would wait for the step queued before it and stall the pipeline.
    host_lrs = np.asarray(jax.device_get(jax.jit(jax.vmap(built.schedule))(jnp.arange(total))))
    tokens_per_step = (first[objective.tokens_key].size * jax.process_count()
                       if objective.tokens_key in first else None)
    flops = objective.flops_per_batch(first)           # of this process's rows
    flops_per_step = flops * jax.process_count() if flops else None
    progress = metrics_lib.Progress(total, start, bool(config.train.progress))
    clock = metrics_lib.Throughput(start)
    history, pending, stopped_early, preempted, batch = [], None, False, False, first
    evaluated = False
    log_every = int(config.train.log_every)
    last_saved = restored[2] if restored else None
    started = time.perf_counter()   # "time/elapsed_s": wall seconds of this process's loop
    all_finite = jax.jit(_all_finite)

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

    check_every = config.train.preemption_check_every
    try:
        with preemption.PreemptionWatch(check_every) as watch:
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
                preempted = watch.stop_at(done)
                eval_now = config.eval.every and (done % int(config.eval.every) == 0 or done == total)
                save_now = done % ckpt.every == 0 or done == total or preempted
                if eval_now or save_now:   # never evaluate or save a state whose loss was not checked
                    if pending is not None:   # this step was logged: flush checks its loss
                        flush(*pending)
                        pending = None
                    elif not math.isfinite(float(jax.device_get(step_metrics["loss"]))):
                        flush(done, step_metrics)   # raises NonFiniteLossError: nothing is saved
                    # The loss was measured before the update; the update itself may have broken
                    # the weights (a huge step, an overflow): such a state is neither evaluated nor saved.
                    if not bool(all_finite((state.params, state.ema_params, state.opt_state))):
                        raise NonFiniteStateError(
                            f"the parameters are not finite after step {done}; stopped without "
                            f"saving (last good checkpoint: step {last_saved})")
                if eval_now and not preempted:
                    eval_started = time.perf_counter()
                    try:
                        with watch.interruptible():
                            scalars = evaluator.run(
                                state.eval_params(), state.frozen, done, final=done == total,
                                aux=state.aux,
                                should_stop=watch.should_stop if jax.process_count() > 1 else None)
                    except preemption.Preempted:    # SIGTERM: save this step, skip its eval
                        eval_now, save_now, preempted = False, True, True
                        progress.write(f"SIGTERM during the eval at step {done}: eval skipped")
                if eval_now and not preempted:
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
                if eval_now and not preempted and not evaluated:
                    evaluated = True                 # the first eval: is the best metric there?
                    if (problem := ckpt.check_best_metric(scalars)) is not None:
                        raise config_check.ConfigError(problem)
                if eval_now and not preempted and on_eval is not None:
                    on_eval(done, scalars)
                if preempted:
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
    return RunResult(state=state, history=history, stopped_early=stopped_early,
                     preempted=preempted)


def load_config_json(workdir: str):
    """The resolved config a run wrote, for ``sample`` / ``eval`` on that workdir."""
    saved = run_record.read_config(workdir)     # a cut or garbled file: one line, not a traceback
    if saved is None:
        raise FileNotFoundError(f"no config.json in workdir {workdir!r}: is it a pretrainx run?")
    return config_base.with_defaults(saved)    # a run older than a field reads its default
