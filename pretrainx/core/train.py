"""``run(config, workdir)``: the one training loop every objective goes through.

``setup`` builds a run from its config: objective, mesh, data, the sharded initial state and one
jitted ``train_step`` (``step.py``: explicit in/out shardings, donated state). ``run`` locks the
workdir, checks a resume's config, restores the newest checkpoint (else ``config.init_from``,
``init_from.py``, when set; else the fresh state), rewrites the run's record (``run/rundir.py``,
``run/provenance.py``) and hands over to ``loop.TrainLoop``, the loop as named phases.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os

import jax
import numpy as np

from pretrainx import data as data_lib
from pretrainx import objectives
from pretrainx.config import check as config_check, defaults as config_defaults
from pretrainx.core import checkpoint as checkpoint_lib, host_devices, init_from, optim
from pretrainx.core import sharding as sharding_lib, state as state_lib
from pretrainx.core.batches import host_batch
# NonFinite*Error: callers (tests, sweeps) catch them as train.X
from pretrainx.core.loop import (EVAL_MARK, NonFiniteLossError,  # noqa: F401
                                 NonFiniteStateError, RunResult, TrainLoop)
from pretrainx.core.step import RNG_IMPLS, train_step
from pretrainx.data import mixtures, tokenizer as tokenizer_lib
from pretrainx.data.base import DataState
from pretrainx.errors import UserError
from pretrainx.run import provenance, rundir, lock as workdir_lock

log = logging.getLogger(__name__)


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
    batch_shardings: dict     # of one batch's leaves, as step_fn takes them


def saved_tokenizer(workdir: str | None):
    """The tokenizer a run saved at its first start, when the run has a checkpoint to resume
    (None otherwise): its ids cannot move even if the corpus or the tokenizer library changed."""
    if not workdir or not checkpoint_lib.has_checkpoint(workdir):
        return None                  # a fresh start fits or trains the tokenizer the config says
    path = rundir.path(workdir, tokenizer_lib.FILENAME)
    return tokenizer_lib.load(path) if os.path.exists(path) else None


def build_dataset(config, objective_cls, workdir: str | None = None) -> data_lib.Dataset:
    """The data of ``config`` as the objective class asks for it (raw length, fields), with the
    tokenizer ``workdir`` saved when there is one."""
    request = objective_cls.data_request(config)
    return data_lib.build(config.data, batch_size=config.batch_size,
                          eval_batch_size=config.eval.batch_size, seq_len=request.seq_len,
                          seed=config.seed, fields=request.fields, tokenizer=saved_tokenizer(workdir),
                          special_tokens=request.special_tokens)


def setup(config, workdir: str | None = None) -> Setup:
    """Objective, mesh, data, sharded initial state and the jitted step of ``config``.
    ``workdir``: a run's directory whose saved tokenizer the data should use."""
    config = config_defaults.with_defaults(config)    # a field the config lacks reads as the base's
    config_check.check_values(config)
    host_devices.request(config)     # before the first use of a backend: it fixes the CPU's devices
    host_devices.enable_compile_cache(config.train.compile_cache)
    objective_cls = objectives.get(config.objective)
    objective_cls.check_config(config)
    mesh = sharding_lib.make_mesh(config.mesh)
    divisor = sharding_lib.batch_divisor(mesh)
    config_check.check_eval_batch(config, divisor, jax.process_count())
    accum = int(config.optimizer.grad_accum)
    rng_impl = config.train.rng_impl
    if rng_impl not in RNG_IMPLS:
        raise UserError(f"unknown train.rng_impl {rng_impl!r} (known: {', '.join(RNG_IMPLS)})")
    if config.batch_size % (divisor * accum):
        raise UserError(f"config.batch_size {config.batch_size} must be divisible by the "
                        f"batch-sharded devices ({divisor}) times optimizer.grad_accum ({accum})")
    request = objective_cls.data_request(config)
    dataset = build_dataset(config, objective_cls, workdir)
    objective = objective_cls(config, objective_cls.data_spec(config, dataset))
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
    return Setup(objective, mesh, dataset, state, shardings, step_fn, schedule, make_batch,
                 batch_shardings)


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
    saved one (``rundir.check_resume``).
    """
    config = config_defaults.with_defaults(config)
    host_devices.request(config)     # before the workdir lock's first jax call
    workdir_lock.prepare(workdir)
    with workdir_lock.WorkdirLock(workdir):
        config = config_check.resolve_paths(config)
        if "sources" in config.data:           # a mixture's folders, absolute as data.path is
            config.data.sources = mixtures.absolute_sources(config.data.sources)
        return _run_locked(config, workdir, stop_after, on_eval)


def _restore_or_init(ckpt, state, built, config, workdir: str):
    """(state, data state, (state, data state, step) restored or None): the newest readable
    checkpoint; else ``init_from`` when set; else the fresh ``state``."""
    data_state = DataState()
    restored = ckpt.restore(state_lib.abstract_state(state, built.shardings))
    if restored is not None:        # resume wins over init_from: the run's own state is newer
        state, data_state, restored_step = restored
        log.info("resumed from step %d (next batch %d)", restored_step, data_state.next_index)
    else:
        for source in init_from.InitFrom.all_from_config(config):   # none: from scratch
            init_from.check_source(source, config, built.dataset.tokenizer)
            state = init_from.apply(state, built.objective, source)
    total = int(config.train.steps)
    if restored is not None and restored[2] > total:
        # A run asked to stop before where it already is cannot be honoured (it exited 0 having
        # done nothing): refused before its record is rewritten.
        raise config_check.ConfigError(
            f"{workdir} holds a run at step {restored[2]}, past train.steps={total}: nothing to "
            f"train (raise train.steps to go on)")
    if restored is not None and restored[2] == total and not final_eval_missing(config, workdir):
        log.warning("the run in %s has already trained its %d steps: nothing to do (raise "
                    "train.steps to go on)", workdir, total)   # a rerun of a finished run: said
    return state, data_state, restored


def final_eval_missing(config, workdir: str) -> bool:
    """The run evaluates, but no eval of its last step was logged (a SIGTERM during that eval
    saved the step without it): the rerun evaluates it, keeping the best checkpoint."""
    total = int(config.train.steps)
    if not config.eval.every or not rundir.has_metrics(workdir):
        return False
    return not any(int(r.get("step", -1)) == total and EVAL_MARK in r
                   for r in rundir.read_rows(workdir))


def _run_locked(config, workdir: str, stop_after, on_eval) -> RunResult:
    checkpoint_lib.recover_deleted_checkpoints(workdir)
    changes = rundir.check_resume(workdir, config) if checkpoint_lib.has_checkpoint(workdir) else {}
    built = setup(config, workdir)
    state, built.state = built.state, None   # one reference, so a restore frees the fresh init
    ckpt = checkpoint_lib.Checkpointer(workdir, config.checkpoint)
    try:
        state, data_state, restored = _restore_or_init(ckpt, state, built, config, workdir)
    except BaseException:
        ckpt.close()       # no manager left running behind the error the user reads
        raise
    restored_step = restored[2] if restored else None
    _rewrite_record(config, workdir, built.dataset, restored_step, changes)
    return TrainLoop(built, config, workdir, ckpt, state, data_state, last_saved=restored_step,
                     stop_after=stop_after, on_eval=on_eval,
                     eval_first=restored_step == int(config.train.steps)
                     and final_eval_missing(config, workdir)).run()


def _rewrite_record(config, workdir: str, dataset, restored_step: int | None, changes) -> None:
    """The run's record is rewritten only once the config and the restore are known good:
    metrics past the restored step dropped, config, provenance and tokenizer written."""
    rundir.trim_metrics(workdir, restored_step or 0)
    rundir.write_config(config, workdir)
    provenance.write(workdir, restored_step, config_changes=changes)
    if dataset.tokenizer is not None and jax.process_index() == 0:
        dataset.tokenizer.save(workdir)
