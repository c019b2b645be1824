"""``pretrainx sweep``: a config file's ``get_sweep(arg)`` run as one Optuna study.

  pretrainx sweep --config FILE[:arg] --workdir DIR [--storage URL] [--parallel N] [--trials K]
                  [--pruner NAME] [--study NAME] [--config.KEY=VALUE ...]

Each trial trains through ``train.run`` in ``DIR/trials/NNN`` (see ``sweep_worker``); when the
workers are done ``sweep_report`` writes ``DIR/results.{csv,md}``, ``DIR/best_config.py`` and the
plots in ``DIR/plots/``. Re-running the same command resumes the study.

Storage. The default is Optuna's journal file ``DIR/study.journal``: Optuna's storage for several
processes on one machine; its file lock makes taking a queued (retried) trial atomic, which
SQLite does not (optuna/optuna#4002). Any SQLAlchemy URL (``sqlite:///x.db``,
``postgresql://user:pw@host/db``) works too; with one, Optuna's heartbeat (``--heartbeat``)
fails the trials of a worker that died on another machine, so every machine pointed at one
PostgreSQL database cooperates on the study.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import random
import signal
import subprocess
import sys
import time
import warnings

import optuna
from optuna.trial import TrialState

from pretrainx.config import load as config_lib

from pretrainx.errors import UserError
from pretrainx.tools import sweep_def

from pretrainx.tools import sweep_report

from pretrainx.tools import sweep_worker

log = logging.getLogger(__name__)
JOURNAL = "study.journal"


def open_storage(url: str | None, workdir: str, heartbeat: int, max_retries: int):
    """(storage, has_heartbeat). ``url``: None (the journal in DIR), a file path (a journal file
    elsewhere, e.g. on NFS) or a database URL."""
    if url and "://" in url:
        for attempt in range(5):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(
                        url, heartbeat_interval=heartbeat,
                        heartbeat_stale_trial_callback=sweep_worker.retry_callback(max_retries)), True
            except Exception:   # two workers creating a new database's tables at once: one loses
                if attempt == 4:
                    raise
                time.sleep(0.5 + random.random())
    path = url or os.path.join(workdir, JOURNAL)
    backend = optuna.storages.journal.JournalFileBackend(path)
    return optuna.storages.JournalStorage(backend), False


def open_study(sweep: sweep_def.Sweep, base, storage, name: str, seed: int) -> optuna.Study:
    """Create the study (and queue the sweep's first points), or load it if another worker or an
    earlier run did. A study made from another sweep definition is refused."""
    sampler = sweep_worker.make_sampler(sweep, seed)
    pruner = sweep_def.make_pruner(sweep, int(base.train.steps))
    direction = "minimize" if sweep.mode == "min" else "maximize"
    # A hash in the study (the dashboard lists user attributes; the full text would swamp it).
    definition = hashlib.sha256(sweep_def.fingerprint(sweep, base).encode()).hexdigest()[:16]
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction=direction,
                                    sampler=sampler, pruner=pruner)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        deadline = time.time() + 30   # the creator writes the definition right after creating
        while "definition" not in study.user_attrs and time.time() < deadline:
            time.sleep(0.2)
        if study.user_attrs.get("definition") != definition:
            raise UserError(f"study {name!r} in this storage was made by another sweep "
                            f"definition or base config; use a new --workdir or --study")
        return study
    study.set_user_attr("definition", definition)
    study.set_user_attr("metric", f"{sweep.metric} ({sweep.value}, {sweep.mode})")
    for point in sweep.enqueue:
        study.enqueue_trial({k: sweep_def.encode(v) for k, v in point.items()})
    return study


def visible_gpus() -> list[str]:
    """GPU ids a worker can be pinned to: CUDA_VISIBLE_DEVICES, else nvidia-smi's list."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def launch_workers(argv: list[str], n: int, workdir: str, study: optuna.Study, budget: int,
                   total_steps: int) -> int:
    """Start ``n`` worker processes of this same command (each one trial at a time; on GPUs each
    sees one device) and wait for them, printing each trial as it finishes."""
    gpus = visible_gpus()
    if gpus and n > len(gpus):
        log.warning("%d workers on %d GPUs: some GPUs run two trials at once", n, len(gpus))
    os.makedirs(os.path.join(workdir, "workers"), exist_ok=True)
    procs = []
    for i in range(n):
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        else:   # the workers share the cores: one CPU device each (core/host_devices.py)
            env.setdefault("JAX_NUM_CPU_DEVICES", "1")
        out = open(os.path.join(workdir, "workers", f"worker_{i}.log"), "a")
        cmd = [sys.executable, "-m", "pretrainx.main", "sweep", *argv,
               "--parallel", "1", "--worker-index", str(i), "--no-report"]
        procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env))
        out.close()

    def forward(signum, frame):   # SIGTERM: every worker saves its trial, re-queues it, stops
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    # Ctrl-C reaches the workers themselves (one process group); the launcher just waits.
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    try:
        show_progress(procs, study, workdir, total_steps)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return launcher_exit_code([p.wait() for p in procs], study, budget, workdir)


RUNNING_EVERY_S = 10.0    # the running line is repeated at most this often while it changes


def show_progress(procs, study: optuna.Study, workdir: str, total_steps: int) -> None:
    """Until the workers exit: a line per finished or pruned trial, and a line of the running
    trials with their last logged step whenever the set changes (else every RUNNING_EVERY_S)."""
    seen: set[int] = set()
    shown, shown_at, running_set = "", 0.0, set()
    while any(p.poll() is None for p in procs):
        time.sleep(1.0)
        trials = study.get_trials(deepcopy=False)
        for t in trials:
            if t.state.is_finished() and t.number not in seen:
                seen.add(t.number)
                if not t.user_attrs.get("surplus"):
                    print(sweep_report.trial_line(trials, t), flush=True)
        now_running = {t.number for t in trials if t.state == TrialState.RUNNING}
        line = sweep_report.running_line(trials, workdir, total_steps)
        changed_set = now_running != running_set
        if line and line != shown and (changed_set or time.time() - shown_at >= RUNNING_EVERY_S):
            print(line, flush=True)
            shown, shown_at, running_set = line, time.time(), now_running


def launcher_exit_code(codes: list[int], study: optuna.Study, budget: int, workdir: str) -> int:
    """75 when a worker was stopped by SIGTERM (rerun to resume); 0 when every trial of the
    budget finished, whatever a worker's own code; else the first failing worker's code."""
    from pretrainx.run.preemption import PREEMPTED_EXIT_CODE
    logs = os.path.join(workdir, "workers")
    if PREEMPTED_EXIT_CODE in codes:
        return PREEMPTED_EXIT_CODE
    trials = study.get_trials(deepcopy=False)
    done = (len(sweep_worker.first_attempts(trials)) >= budget and
            not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials))
    bad = [c for c in codes if c != 0]
    if bad:
        log.warning("worker exit codes %s; logs in %s", codes, logs)
    return 0 if done or not bad else bad[0]


def print_finished(study: optuna.Study, trial) -> None:
    """Optuna callback of a worker: the finished (or pruned, failed) trial's line."""
    if not trial.user_attrs.get("surplus"):
        print(sweep_report.trial_line(study.get_trials(deepcopy=False), trial), flush=True)


def run_sweep(spec: str, workdir: str, *, argv: list[str], overrides: dict | None = None,
              storage: str | None = None, parallel: int = 1, trials: int | None = None,
              pruner: str | None = None, study_name: str | None = None, heartbeat: int = 60,
              worker_index: int | None = None, report: bool = True) -> int:
    """The ``pretrainx sweep`` command; returns its exit code."""
    sweep, base = sweep_def.load(spec)
    try:
        base = config_lib.override(base, overrides or {})
    except TypeError as e:
        raise UserError(f"a --config override does not fit the config: {e}") from None
    if pruner is not None:
        sweep = dataclasses.replace(sweep, pruner=pruner)
    sweep_def.check(sweep, base)
    budget = sweep.trials if trials is None else trials
    if budget < 1 or (sweep.sampler == "grid" and budget > len(sweep.points)):
        raise UserError(f"--trials {budget}: the grid has {len(sweep.points)} points"
                        if budget >= 1 else f"--trials {budget} must be >= 1")
    if parallel < 1:
        raise UserError(f"--parallel {parallel} must be >= 1")
    os.makedirs(workdir, exist_ok=True)
    name = study_name or os.path.basename(os.path.abspath(workdir))
    store, heartbeat_on = open_storage(storage, workdir, heartbeat, sweep.max_retries)
    # The first worker of a fresh study samples with the sweep's seed (reproducible); any other
    # worker with a seed of its own, so no two workers draw the same points.
    seed = sweep.seed + 1000 * (worker_index or 0)
    study = open_study(sweep, base, store, name, seed)
    if worker_index is None and study.get_trials(deepcopy=False):
        study.sampler = sweep_worker.make_sampler(sweep, random.randrange(2**31))
    code = 0
    if parallel > 1:
        code = launch_workers(argv, parallel, workdir, study, budget, int(base.train.steps))
    else:
        objective = sweep_worker.TrialObjective(sweep, base, workdir, budget)
        sweep_worker.work(study, objective, max_retries=sweep.max_retries, heartbeat=heartbeat_on,
                          on_finished=print_finished)
    if report:
        paths = sweep_report.write(study, sweep, base, workdir, spec=spec, overrides=overrides or {})
        print(f"{len(paths)} result files in {workdir}: " + ", ".join(
            os.path.relpath(p, workdir) for p in paths))
    return code
