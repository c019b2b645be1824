"""One sweep worker: takes trials from the Optuna study until the budget is spent, trains each
through ``train.run`` in ``DIR/trials/NNN``, and keeps an interrupted trial resumable.

How trials are shared without any being run twice (by several processes, or machines):
  * A *first attempt* is any trial that is not a retry. Its index (how many first attempts the
    storage numbered before it) is the sweep's trial number: it picks the grid point and names
    ``DIR/trials/NNN``. An index past the budget marks the trial surplus (two workers raced for
    the last slot) and it is pruned before training anything. The storage assigns trial numbers
    atomically, so no two first attempts share an index.
  * A trial that stopped without finishing (SIGKILL, SIGTERM, Ctrl-C, a crash) is failed and
    re-queued by Optuna's ``RetryHeartbeatStaleTrialCallback``; the retry trains in the original
    trial's directory, so ``train.run`` resumes from its checkpoint. Waiting trials are popped by
    the storage atomically (the journal file's lock, or the database's row lock).
  * A dead worker's trial is found at once on this machine: every worker holds an flock on its
    own file in ``DIR/workers/`` for its whole life (the kernel drops it when the process dies)
    and names that file on each trial it runs. Taking a trial and naming it happen under one
    sweep-wide lock, the same one the search for dead workers' trials takes, so a running trial
    that names no worker was left by a worker that died in between. On other machines an RDB
    storage's heartbeat finds a dead worker's trial (``--heartbeat``).
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
import uuid
import warnings

import optuna
from optuna.trial import TrialState

from pretrainx.config import load as config_lib

from pretrainx.errors import UserError
from pretrainx.run import rundir

from pretrainx.tools import sweep_def

log = logging.getLogger(__name__)
# Errors a retry cannot fix: the same config fails the same way (a bad value, divergence).
DETERMINISTIC_ERRORS = (ValueError, TypeError, KeyError, AttributeError, FloatingPointError)


class Interrupted(KeyboardInterrupt):
    """SIGTERM reached ``train.run``: it saved a checkpoint and returned; the sweep stops."""


def is_retry(trial) -> bool:
    return "failed_trial" in trial.system_attrs


def origin(trial) -> int:
    """The number of the first attempt this trial continues (its own number if not a retry)."""
    return trial.system_attrs.get("failed_trial", trial.number)


def first_attempts(trials) -> list:
    return [t for t in trials if not is_retry(t)]


def point_index(trials, trial) -> int:
    """The sweep's own trial number: how many first attempts the storage numbered before this
    trial's first attempt. It picks the grid point and names ``DIR/trials/NNN``; a retry keeps it."""
    first = origin(trial)
    return sum(1 for t in first_attempts(trials) if t.number < first)


def retry_callback(max_retries: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=max_retries, inherit_intermediate_values=True)


class GridPointsSampler(optuna.samplers.BaseSampler):
    """Returns the values of the grid point the objective picked (``user_attrs["point"]``)."""

    def __init__(self, points: list[dict]):
        self.points = [{k: sweep_def.encode(v) for k, v in p.items()} for p in points]

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.points[trial.user_attrs["point"]][param_name]


def make_sampler(sweep: sweep_def.Sweep, seed: int):
    if sweep.sampler == "grid":
        return GridPointsSampler(list(sweep.points))
    cls = {"random": optuna.samplers.RandomSampler, "tpe": optuna.samplers.TPESampler}[sweep.sampler]
    return cls(seed=seed, **sweep.sampler_options)


class TrialObjective:
    """The function Optuna calls per trial: overrides -> ``train.run`` -> the trial's value."""

    def __init__(self, sweep: sweep_def.Sweep, base_config, workdir: str, budget: int):
        self.sweep, self.base, self.workdir, self.budget = sweep, base_config, workdir, budget
        self.total_steps = int(base_config.train.steps)
        self.current = None      # number of the trial being run, for the interrupt handler

    def __call__(self, trial: optuna.Trial) -> float:
        from pretrainx.core import train   # jax is imported by the trial, not by `sweep --help`
        self.current = trial.number
        trials = trial.study.get_trials(deepcopy=False)
        me = next(t for t in trials if t.number == trial.number)
        index = point_index(trials, me)
        if index >= self.budget:
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned(f"surplus: the budget of {self.budget} trials is spent")
        trial.set_user_attr("point", index)
        overrides = self._suggest(trial)
        run_dir = os.path.join(self.workdir, "trials", f"{index:03d}")
        trial.set_user_attr("workdir", os.path.relpath(run_dir, self.workdir))
        trial.set_user_attr("start_step", _latest_checkpoint_step(run_dir))
        print(f"running: trial {index:03d} (optuna {trial.number}) " + ", ".join(
            f"{k}={v!r}" for k, v in sorted(overrides.items())), flush=True)
        config = config_lib.override(self.base, overrides)
        reported = set(me.intermediate_values)   # a retry inherits its first attempt's reports

        def on_eval(step, scalars):
            if self.sweep.metric not in scalars or step in reported:
                return
            trial.report(float(scalars[self.sweep.metric]), step)
            reported.add(step)
            if step < self.total_steps and trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}")

        try:
            result = train.run(config, run_dir, on_eval=on_eval)
        except optuna.TrialPruned:
            raise
        except Exception as e:   # the table's note; a retry only where it can help
            trial.set_user_attr("error", f"{type(e).__name__}: {(str(e) or '-').splitlines()[0][:300]}")
            if isinstance(e, DETERMINISTIC_ERRORS):
                trial.set_user_attr("no_retry", True)
            raise
        if result.stopped_early:
            raise Interrupted(f"trial {trial.number} saved and stopped (SIGTERM)")
        summary = rundir.summarize(run_dir, self.sweep.metric, self.sweep.mode)
        if summary is None:
            trial.set_user_attr("no_retry", True)
            raise UserError(f"the run never logged {self.sweep.metric!r}")
        trial.set_user_attr("best_step", summary["best_step"])
        return summary["best"] if self.sweep.value == "best" else summary["final"]

    def _suggest(self, trial: optuna.Trial) -> dict:
        """The trial's overrides, drawn through Optuna so they are its params (dashboard, TPE)."""
        sweep, out = self.sweep, {}
        if sweep.sampler == "grid":
            point = sweep.points[trial.user_attrs["point"]]
            for key in point:
                choices = list(dict.fromkeys(sweep_def.encode(p[key]) for p in sweep.points if key in p))
                out[key] = trial.suggest_categorical(key, choices)
        else:
            for key, dist in sweep.space.items():
                if isinstance(dist, optuna.distributions.FloatDistribution):
                    out[key] = trial.suggest_float(key, dist.low, dist.high, log=dist.log, step=dist.step)
                elif isinstance(dist, optuna.distributions.IntDistribution):
                    out[key] = trial.suggest_int(key, dist.low, dist.high, log=dist.log, step=dist.step)
                else:
                    out[key] = trial.suggest_categorical(key, dist.choices)
        fields = {k: _get(self.base, k) for k in out}
        return {k: sweep_def.decode(v, fields[k]) for k, v in out.items()}


def _get(config, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


def _latest_checkpoint_step(run_dir: str) -> int:
    ckpt = os.path.join(run_dir, "checkpoints")
    steps = [int(d) for d in os.listdir(ckpt) if d.isdigit()] if os.path.isdir(ckpt) else []
    return max(steps, default=0)


class WorkerLock:
    """This worker's flock, held for its whole life, and its handle on the sweep-wide lock."""

    def __init__(self, workdir: str):
        self.folder = os.path.join(workdir, "workers")
        os.makedirs(self.folder, exist_ok=True)
        self.host = socket.gethostname()
        self.path = os.path.join(self.folder, f"{self.host}-{os.getpid()}-{uuid.uuid4().hex[:8]}.lock")
        self._file = open(self.path, "w")
        fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # One open file per worker: flock locks belong to the open file, so every use below
        # goes through this one handle.
        self._sweep = open(os.path.join(self.folder, "sweep.lock"), "w")

    def hold_sweep(self) -> None:
        fcntl.flock(self._sweep, fcntl.LOCK_EX)

    def release_sweep(self) -> None:
        fcntl.flock(self._sweep, fcntl.LOCK_UN)

    def mark(self, trial) -> None:
        """Name this worker on ``trial``; the trial's number in the mark tells a retry's copy of
        its first attempt's mark (a dead worker's) from its own."""
        trial.set_user_attr("worker", {"host": self.host, "pid": os.getpid(), "lock": self.path,
                                       "trial": trial.number})

    def close(self):
        with contextlib.suppress(OSError):
            os.remove(self.path)
        self._file.close()
        self._sweep.close()


def _lock_is_free(path: str) -> bool:
    """True when no live process holds the flock on ``path`` (its worker died)."""
    try:
        with open(path) as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
    except BlockingIOError:
        return False
    except FileNotFoundError:   # removed by a worker that closed: not running
        return True


def fail_dead_trials(study: optuna.Study, retry, lock: WorkerLock, *, unmarked: bool) -> list[int]:
    """Fail and re-queue RUNNING trials whose worker on this machine has died. Call with the
    sweep lock held: then no live worker is between taking a trial and marking it, so with
    ``unmarked`` (one machine, the journal file) a trial that names no worker is dead too."""
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        mark = t.user_attrs.get("worker") or {}
        if mark.get("trial") == t.number:
            dead = mark["host"] == lock.host and mark["lock"] != lock.path and \
                _lock_is_free(mark["lock"])
        else:
            dead = unmarked
        if dead:
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            retry(study, _frozen(study, t.number))
            failed.append(t.number)
            log.warning("trial %d: its worker died; queued for a retry", t.number)
    return failed


def retry_failed_callback(retry):
    def retry_failed(study, frozen):
        if frozen.state == TrialState.FAIL and not frozen.user_attrs.get("no_retry"):
            retry(study, frozen)
    return retry_failed


def _frozen(study, number):
    return next(t for t in study.get_trials(deepcopy=True) if t.number == number)


def work(study: optuna.Study, objective: TrialObjective, *, max_retries: int, poll_s: float = 2.0,
         heartbeat: bool = False, on_finished=None) -> None:
    """Run trials until the study holds ``budget`` first attempts and none is running or queued.

    Idle while others' trials run: one of them may yet fail and need a retry. A SIGTERM at any
    point (in a trial, between trials, while idle) stops the worker before it takes another trial
    (``Interrupted``). ``on_finished(study, trial)``: called as each trial of this worker ends."""
    from pretrainx.run import preemption    # jax: imported by a worker, not by `sweep --help`
    with preemption.PreemptionWatch():
        _work(study, objective, max_retries, poll_s, heartbeat, on_finished, preemption.signalled)


def _work(study, objective, max_retries, poll_s, heartbeat, on_finished, signalled) -> None:
    retry = retry_callback(max_retries)
    callbacks = [retry_failed_callback(retry)] + ([on_finished] if on_finished else [])
    lock = WorkerLock(objective.workdir)

    def run_one(trial):
        lock.mark(trial)
        lock.release_sweep()   # taken before optimize() took this trial
        return objective(trial)

    try:
        while True:
            if signalled():
                raise Interrupted("SIGTERM: no further trial taken")
            lock.hold_sweep()
            try:
                fail_dead_trials(study, retry, lock, unmarked=not heartbeat)
                if heartbeat:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        optuna.storages.fail_stale_trials(study)
                trials = study.get_trials(deepcopy=False)
                waiting = any(t.state == TrialState.WAITING for t in trials)
                if waiting or len(first_attempts(trials)) < objective.budget:
                    # run_one releases the sweep lock once the trial names this worker
                    study.optimize(run_one, n_trials=1, catch=(Exception,), callbacks=callbacks)
                    objective.current = None   # finished and told: not the interrupt's to retry
                    continue
            except KeyboardInterrupt:
                if objective.current is not None:
                    frozen = _frozen(study, objective.current)
                    if frozen.state == TrialState.FAIL:
                        retry(study, frozen)
                raise
            finally:
                lock.release_sweep()
            if any(t.state == TrialState.RUNNING for t in trials):
                time.sleep(poll_s)
                continue
            return
    finally:
        lock.close()
