"""``pretrainx sweep`` end to end on CPU-sized trials of shakespeare_char:smoke.

  * a 4-trial grid with --parallel 2, SIGKILLed mid-way and re-run: only what was missing runs,
    the interrupted trial resumes from its checkpoint, and the table, best config and plots land;
  * two workers started separately on one SQLite study share its trials, none run twice, and a
    trial whose worker got SIGTERM is saved, re-queued and finished by the other worker;
  * a random sweep with the median pruner prunes a learning rate 100x too high after its first eval;
  * a crashing trial is retried up to the sweep's limit (and no further on a rerun), a diverging
    one is not retried.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import optuna
import pytest

from pretrainx.config import load as config_lib

from pretrainx.run import preemption, rundir

from pretrainx.tools import sweep

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
SMOKE = os.path.join(ROOT, "configs/gpt/shakespeare_char.py:smoke")
STEPS = 120
# The :smoke model (2 layers; the grid sweeps lr x embed_dim 64/128) on shorter runs: a trial is
# ~10 s on one CPU core, with a checkpoint and an eval every 40 steps.
SHRINK = {"train.steps": STEPS, "eval.every": 40, "checkpoint.every": 40, "train.log_every": 20,
          "batch_size": 16, "eval.batch_size": 16, "eval.num_batches": 4,
          "optimizer.decay_steps": STEPS, "train.progress": False}
GRID = {(lr, d) for lr in (1e-3, 3e-3) for d in (64, 128)}


def sweep_cmd(workdir, *extra):
    return [sys.executable, "-m", "pretrainx.main", "sweep", "--config", SMOKE,
            "--workdir", str(workdir), *[f"--config.{k}={v}" for k, v in SHRINK.items()], *extra]


def worker_env():
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)   # one CPU device per worker, not the tests' eight fake ones
    return env


def checkpoint_steps(run_dir):
    ckpt = os.path.join(run_dir, "checkpoints")
    return sorted(int(d) for d in os.listdir(ckpt) if d.isdigit()) if os.path.isdir(ckpt) else []


def load_journal(workdir):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        os.path.join(workdir, sweep.JOURNAL)))
    return optuna.load_study(study_name=os.path.basename(workdir), storage=storage)


def read_csv(workdir):
    import csv
    with open(os.path.join(workdir, "results.csv")) as f:
        return list(csv.DictReader(f))


def assert_train_steps_logged_once(run_dir):
    steps = [r["step"] for r in rundir.read_rows(run_dir) if "train/loss" in r]
    assert len(steps) == len(set(steps)), f"{run_dir}: steps logged twice: {steps}"


def assert_results_complete(workdir):
    rows = read_csv(workdir)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"COMPLETE"}, rows
    assert {(float(r["optimizer.lr"]), int(r["model.embed_dim"])) for r in rows} == GRID
    assert sorted(os.listdir(os.path.join(workdir, "trials"))) == ["000", "001", "002", "003"]
    for name in ("results.md", "best_config.py", "plots/curves.png", "plots/metric_vs_params.png",
                 "plots/importance.png"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    # The best config file trains exactly the best trial's config.
    best = min(rows, key=lambda r: float(r["val/loss"]))
    with open(os.path.join(workdir, "trials", f"{int(best['trial']):03d}", "config.json")) as f:
        trial_config = json.load(f)
    best_config = config_lib.load(os.path.join(workdir, "best_config.py"))
    assert json.loads(best_config.to_json()) == trial_config
    return rows


@pytest.mark.slow
def test_grid_sweep_parallel_2_killed_and_rerun_finishes_only_what_was_missing(tmp_path):
    workdir = str(tmp_path / "grid")
    proc = subprocess.Popen(sweep_cmd(workdir, "--parallel", "2"), env=worker_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    # Kill when a trial is complete and another is between its checkpoints.
    trials_dir, t0, study = os.path.join(workdir, "trials"), time.time(), None
    while True:
        assert proc.poll() is None, "sweep ended before it could be killed:\n" + proc.stdout.read()
        assert time.time() - t0 < 400, "no trial reached its first checkpoint"
        if study is None and os.path.isdir(trials_dir):
            study = load_journal(workdir)
        states = {t.number: t.state for t in study.get_trials()} if study else {}
        steps = {n: checkpoint_steps(os.path.join(trials_dir, f"{n:03d}")) for n in states}
        if optuna.trial.TrialState.COMPLETE in states.values() and any(
                s == optuna.trial.TrialState.RUNNING and steps[n] and STEPS not in steps[n]
                for n, s in states.items()):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    # No retries yet, so Optuna's trial numbers are the sweep's (and the folders') here.
    before = {t.number: t.state for t in load_journal(workdir).get_trials()}
    done = [n for n, s in before.items() if s == optuna.trial.TrialState.COMPLETE]
    interrupted = {n: checkpoint_steps(os.path.join(trials_dir, f"{n:03d}"))
                   for n, s in before.items() if s == optuna.trial.TrialState.RUNNING}
    assert done and any(interrupted.values()), (before, interrupted)
    done_logs = {n: open(os.path.join(trials_dir, f"{n:03d}", "metrics.jsonl")).read() for n in done}

    rerun = subprocess.run(sweep_cmd(workdir, "--parallel", "2"), env=worker_env(),
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    rows = assert_results_complete(workdir)
    attempts = {int(r["trial"]): int(r["attempts"]) for r in rows}
    trials = load_journal(workdir).get_trials()
    for n in done:   # finished before the kill: not touched again
        assert attempts[n] == 1
        assert open(os.path.join(trials_dir, f"{n:03d}", "metrics.jsonl")).read() == done_logs[n]
    for n, ckpts in interrupted.items():   # resumed from its last checkpoint, in its own folder
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == n]
        assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
        assert retries[0].user_attrs["start_step"] == (ckpts[-1] if ckpts else 0)
        assert retries[0].user_attrs["workdir"] == os.path.join("trials", f"{n:03d}")
        assert attempts[n] == 2
    # Four grid points, four first attempts: no point was taken twice, none trained twice.
    firsts = [t for t in trials if "failed_trial" not in t.system_attrs
              and not t.user_attrs.get("surplus")]
    assert len(firsts) == 4


@pytest.mark.slow
def test_two_separate_workers_share_one_sqlite_study(tmp_path):
    workdir = str(tmp_path / "shared")
    url = f"sqlite:///{tmp_path}/study.db"
    cmd = sweep_cmd(workdir, "--storage", url)
    first = subprocess.Popen(cmd, env=worker_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    second = subprocess.Popen(cmd, env=worker_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    # SIGTERM the first worker once its trial has a checkpoint: it saves and re-queues the trial;
    # the second worker finishes that trial from the checkpoint and then the rest of the study.
    study, t0, target = None, time.time(), None
    while target is None:
        assert first.poll() is None, first.communicate()
        assert time.time() - t0 < 300, "the first worker never reached a checkpoint"
        if study is None and os.path.isdir(os.path.join(workdir, "trials")):   # study created
            study = optuna.load_study(study_name="shared", storage=url)
        running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,)) if study else []
        for t in running:
            mark = t.user_attrs.get("worker") or {}
            steps = checkpoint_steps(os.path.join(workdir, t.user_attrs.get("workdir", "-")))
            if mark.get("pid") == first.pid and mark.get("trial") == t.number and steps \
                    and STEPS not in steps:
                target = t.number
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=120)
    # a SIGTERM stops the worker as it stops a run: saved, exit 75 (#24)
    assert first.returncode == preemption.PREEMPTED_EXIT_CODE, err[-2000:]
    assert "rerun the same command to resume" in err, err[-2000:]
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err[-3000:]

    assert_results_complete(workdir)
    trials = study.get_trials()
    # Both workers took trials of the one study: the first began `target`, the second finished it
    # from the checkpoint the first saved on SIGTERM.
    assert trials[target].user_attrs["worker"]["pid"] == first.pid
    assert trials[target].state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials if "failed_trial" in t.system_attrs]
    assert [t.system_attrs["failed_trial"] for t in retries] == [target]
    assert retries[0].user_attrs["worker"]["pid"] == second.pid
    assert retries[0].user_attrs["start_step"] > 0
    for n in range(4):   # no trial ran twice: each logged each train step once
        assert_train_steps_logged_once(os.path.join(workdir, "trials", f"{n:03d}"))


@pytest.mark.slow
def test_median_pruner_stops_a_learning_rate_100x_too_high(tmp_path):
    config_file = tmp_path / "pruned.py"
    config_file.write_text(textwrap.dedent(f"""
        from pretrainx.config import load as config_lib
        from pretrainx.tools import sweep_def as sd

        def get_config(arg=""):
            return config_lib.override(config_lib.load({SMOKE!r}), {SHRINK!r})

        def get_sweep(arg=""):
            # The recipe's lr, then one 100x too high, then one random draw.
            return sd.search({{"optimizer.lr": sd.loguniform(1e-4, 1.0)}}, sampler="random",
                             trials=3, enqueue=[{{"optimizer.lr": 3e-3}}, {{"optimizer.lr": 0.3}}],
                             pruner="median", pruner_options={{"n_startup_trials": 1}})
    """))
    workdir = str(tmp_path / "pruning")
    assert sweep.run_sweep(str(config_file), workdir, argv=[]) == 0
    trials = {t.number: t for t in load_journal(workdir).get_trials()}
    good, bad = trials[0], trials[1]
    assert good.params["optimizer.lr"] == 3e-3 and good.state == optuna.trial.TrialState.COMPLETE
    assert bad.params["optimizer.lr"] == 0.3 and bad.state == optuna.trial.TrialState.PRUNED
    # Stopped at its first eval, well before the end, after that step's checkpoint was saved.
    assert max(bad.intermediate_values) == 40 < STEPS
    assert bad.intermediate_values[40] > good.intermediate_values[40] + 0.3
    bad_dir = os.path.join(workdir, "trials", "001")
    assert max(r["step"] for r in rundir.read_rows(bad_dir)) == 40
    assert checkpoint_steps(bad_dir) == [40]
    rows = {int(r["trial"]): r for r in read_csv(workdir)}
    assert rows[1]["status"] == "PRUNED" and rows[1]["note"] == "pruned at step 40"


def _failing_sweep(tmp_path, grid: str) -> str:
    config_file = tmp_path / "failing.py"
    config_file.write_text(textwrap.dedent(f"""
        from pretrainx.config import load as config_lib
        from pretrainx.tools import sweep_def as sd

        def get_config(arg=""):
            return config_lib.override(config_lib.load({SMOKE!r}), {{
                "train.steps": 20, "train.log_every": 1, "eval.every": 10, "mesh.data": 1,
                "train.progress": False, "model.num_layers": 1, "model.embed_dim": 32}})

        def get_sweep(arg=""):
            return {grid}
    """))
    return str(config_file)


def test_a_crashing_trial_is_retried_up_to_the_limit_and_a_rerun_adds_nothing(tmp_path):
    missing = str(tmp_path / "missing.txt")   # every attempt crashes with an OSError
    config = _failing_sweep(tmp_path, f"sd.grid(sd.values('data.path', [{missing!r}]), max_retries=2)")
    workdir = str(tmp_path / "crash")
    for _ in range(2):   # the second run finds the retries spent and trains nothing
        assert sweep.run_sweep(config, workdir, argv=[]) == 0
        trials = load_journal(workdir).get_trials()
        assert [t.state.name for t in trials] == ["FAIL"] * 3
        assert [t.system_attrs.get("failed_trial") for t in trials] == [None, 0, 0]
    (row,) = read_csv(workdir)
    assert row["status"] == "FAIL" and row["attempts"] == "3" and row["optuna_trials"] == "0 1 2"
    assert row["note"].startswith("FileNotFoundError: data file not found")


@pytest.mark.slow
def test_a_diverging_trial_is_not_retried(tmp_path):
    config = _failing_sweep(tmp_path, "sd.grid(sd.values('optimizer.lr', [1e4]), max_retries=2)")
    workdir = str(tmp_path / "diverge")
    assert sweep.run_sweep(config, workdir, argv=[]) == 0
    (trial,) = load_journal(workdir).get_trials()
    assert trial.state.name == "FAIL" and trial.user_attrs["no_retry"] is True
    (row,) = read_csv(workdir)
    assert row["attempts"] == "1" and row["note"].startswith("NonFiniteLossError: loss is")
