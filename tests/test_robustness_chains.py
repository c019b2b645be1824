"""Issue 24, part B, through the real command line: chains that would load the wrong thing,
signals and faults around the last eval, deleted checkpoints and sweeps, and the telling of a
user error from a bug by its type. Each class tries at least three members.

The runs are the tiny byte-level GPT of tests/test_cli.py (1 layer, width 32, 4 steps)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import ml_collections
import optuna
import pytest

from pretrainx.core import init_from
from pretrainx.tools import sweep
from tiny_cli import tiny_gpt_flags

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
CONFIG = os.path.join(ROOT, "configs/gpt/shakespeare_char.py:smoke")
TINY = tiny_gpt_flags(4)
PREEMPTED = 75


def env(**extra):
    e = {k: v for k, v in os.environ.items() if k != "PRETRAINX_DEBUG"}
    return {**e, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu",
            **extra}


def train_cmd(workdir, *extra, config=CONFIG):
    return [sys.executable, "-m", "pretrainx.main", "train", "--config", config,
            "--workdir", str(workdir), *TINY, *extra]


def run(cmd, **extra_env):
    return subprocess.run(cmd, cwd=ROOT, env=env(**extra_env), capture_output=True, text=True,
                          timeout=600)


def one_line_error(p, code=2):
    """The process exited ``code`` with one error line and no traceback; that line."""
    assert p.returncode == code and "Traceback" not in p.stderr, p.stderr[-3000:]
    errors = [line for line in p.stderr.splitlines() if line.startswith("pretrainx: error:")]
    assert len(errors) == 1, p.stderr[-3000:]
    return errors[0]


def rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def wait_until(condition, proc, what, timeout=300):
    t0 = time.time()
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}: "
                                 f"{proc.stderr.read()[-3000:] if proc.stderr else ''}")
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def remove(path):
    """rm -r a folder a live run may be writing into (a file made meanwhile: try again)."""
    while os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)


def start(cmd):
    return subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# --- class 1: chains load the wrong thing without a word --------------------------------------

@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("parent")
    p = run(train_cmd(workdir))
    assert p.returncode == 0, p.stderr[-3000:]
    return str(workdir)


@pytest.mark.slow
def test_chains_refuse_another_model_another_vocabulary_and_a_running_parent(parent, tmp_path):
    child = lambda name, *flags: run(train_cmd(tmp_path / name, f"--config.init_from.workdir={parent}",
                                               *flags))
    # another model: 2 layers under a 1-layer parent (layer 0 would load, layer 1 stay fresh)
    line = one_line_error(child("deeper", "--config.model.num_layers=2"))
    assert "InitFromError" in line and "model.num_layers=1 there, model.num_layers=2 here" in line
    # another vocabulary of the same size: a char tokenizer fit on the same text, 256 ids
    line = one_line_error(child("chars", "--config.data.tokenizer=char"))
    assert "the tokenizer of" in line and "is not this run's" in line, line
    assert not any(s.isdigit() for s in os.listdir(tmp_path / "chars" / "checkpoints"))   # none saved
    # a parent still training (a live process holds its run.lock): "latest" is refused ...
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, json, os, time
        f = open({os.path.join(parent, 'run.lock')!r}, 'a+')
        fcntl.flock(f, fcntl.LOCK_EX)
        f.truncate(0); f.write(json.dumps({{"pid": os.getpid(), "host": "h", "since": "t"}}))
        f.flush(); print("held", flush=True); time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = one_line_error(child("running"))
        assert "is still training (pid" in line and "init_from.step=N" in line, line
        # ... and a named step it has not saved yet is waited for until the parent stops
        log = tmp_path / "named.log"
        with open(log, "w") as err:
            named = subprocess.Popen(train_cmd(tmp_path / "named", f"--config.init_from.workdir={parent}",
                                               "--config.init_from.step=8"),
                                     cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=err)
            wait_until(lambda: "waiting for its step 8" in log.read_text(), named, "the wait")
            time.sleep(3)
            assert named.poll() is None          # still waiting while the parent "trains"
            holder.kill()
            named.wait(timeout=120)
        p = subprocess.CompletedProcess([], named.returncode, "", log.read_text())
        assert "no checkpoint of step 8" in one_line_error(p)
    finally:
        holder.kill()
        holder.wait()
    # a named step the finished parent holds loads (the same arrays as "latest")
    p = child("step4", "--config.init_from.step=4")
    assert p.returncode == 0 and "init_from: " in p.stderr, p.stderr[-3000:]


def test_a_mapping_that_fills_nothing_and_a_setting_that_must_agree_are_refused(tmp_path):
    """Without training: the source's config.json and tokenizer are read before any array."""
    source = tmp_path / "reward"
    source.mkdir()
    (source / "config.json").write_text(json.dumps(
        {"model": {"arch": "gpt", "embed_dim": 32}, "reward": {"pool": "mean"}}))
    target = ml_collections.ConfigDict({"model": {"arch": "gpt", "embed_dim": 32},
                                        "ppo": {"reward_pool": "last"}})
    opts = init_from.InitFrom(str(source), "latest", (("params", "frozen/reward"),),
                              agree=(("reward.pool", "ppo.reward_pool"),))
    with pytest.raises(init_from.InitFromError, match=r"reward.pool='mean' there, "
                                                      r"ppo.reward_pool='last' here"):
        init_from.check_source(opts, target, None)
    target.model.arch = "bert"
    with pytest.raises(init_from.InitFromError, match=r"model.arch='gpt' there"):
        init_from.check_source(init_from.InitFrom(str(source)), target, None)
    # 0 arrays placed: the plan of an empty (all dropped) source is refused, not trained from scratch
    assert init_from.plan({"params": {}}, {"params": {"w": 0}}, (("params", "params"),)) == {}


# --- class 2: signals and faults ---------------------------------------------------------------

@pytest.mark.slow
def test_sigterm_during_the_last_eval_then_the_rerun_does_that_eval_and_keeps_the_best(tmp_path):
    long_eval = ["--config.eval.every=4", "--config.eval.num_batches=1000000"]
    proc = start(train_cmd(tmp_path, *long_eval))
    try:   # step 4's train row is written right before its (final) eval begins
        wait_until(lambda: (tmp_path / "metrics.jsonl").exists() and
                   any(r["step"] == 4 for r in rows(tmp_path)), proc, "step 4")
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == PREEMPTED, err[-3000:]
    assert not os.path.exists(tmp_path / "checkpoints_best" / "4")
    # the rerun (a shorter eval: a safe change while no best checkpoint is kept) evaluates step 4
    p = run(train_cmd(tmp_path, "--config.eval.every=4", "--config.eval.num_batches=2"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "saved without its final eval" in p.stderr and "nothing to do" not in p.stderr
    assert any(r["step"] == 4 and "val/loss" in r for r in rows(tmp_path))
    assert sorted(os.listdir(tmp_path / "checkpoints_best")) == ["4"]


@pytest.mark.slow
def test_checkpoints_deleted_while_training_and_before_reruns(tmp_path):
    flags = ["--config.train.steps=60", "--config.checkpoint.every=10", "--config.eval.every=10",
             "--config.eval.num_batches=1", "--config.train.log_every=10"]
    proc = start(train_cmd(tmp_path, *flags))
    try:
        wait_until(lambda: (tmp_path / "checkpoints" / "20").is_dir(), proc, "checkpoint 20")
        remove(tmp_path / "checkpoints")
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    # 1. while training: a warning line, the folder made again, the run ends saved (when the
    # folder went during an async save, Orbax's own thread also logs that save's failure)
    assert proc.returncode == 0, err[-3000:]
    assert "was deleted while the run trained" in err or "were deleted while the run trained" in err
    assert "60" in os.listdir(tmp_path / "checkpoints")
    # 2. deleted after the run, rerun with more steps: resumes from the best checkpoint, rows kept
    remove(tmp_path / "checkpoints")
    best = int(os.listdir(tmp_path / "checkpoints_best")[0])
    p = run(train_cmd(tmp_path, *flags[1:], "--config.train.steps=70"))
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert f"resuming from the best one, step {best}" in p.stderr
    train_steps = [r["step"] for r in rows(tmp_path) if "train/loss" in r]
    assert train_steps == list(range(10, 80, 10))   # kept up to the best, trained again after
    # 3. both folders gone: refused, one line, metrics.jsonl untouched
    for sub in ("checkpoints", "checkpoints_best"):
        remove(tmp_path / sub)
    before = (tmp_path / "metrics.jsonl").read_bytes()
    line = one_line_error(run(train_cmd(tmp_path, *flags[1:], "--config.train.steps=80")))
    assert "CheckpointError" in line and "checkpoints/ is gone" in line, line
    assert (tmp_path / "metrics.jsonl").read_bytes() == before


@pytest.mark.slow
def test_sweep_prints_each_trial_and_a_sigterm_between_trials_stops_the_worker(tmp_path):
    shrink = {"train.steps": 8, "eval.every": 4, "checkpoint.every": 4, "train.log_every": 4,
              "eval.num_batches": 1}
    cmd = [sys.executable, "-m", "pretrainx.main", "sweep", "--config", CONFIG,
           "--workdir", str(tmp_path), "--trials", "3",
           *[a for a in TINY if not a.startswith(("--config.train.steps", "--config.eval.every"))],
           *[f"--config.{k}={v}" for k, v in shrink.items()]]
    proc = start(cmd)
    out = []
    try:   # a line per finished trial, with its value, params and wall time, as it finishes
        for line in proc.stdout:
            out.append(line)
            if line.startswith("trial 000"):
                proc.send_signal(signal.SIGTERM)   # between trial 0 and trial 1
                break
        rest, err = proc.communicate(timeout=300)
        out.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(out)
    assert proc.returncode == PREEMPTED, err[-3000:]
    assert "running: trial 000 (optuna 0) model.embed_dim=64, optimizer.lr=0.001" in text, text
    assert "trial 000 (optuna 0) COMPLETE value=" in text and " wall=" in text, text
    assert len(os.listdir(tmp_path / "trials")) <= 2, text   # no trial after the one running
    assert "rerun the same command to resume" in err


def test_the_sweep_launcher_exits_0_when_every_trial_finished():
    """Its code comes from the study, not from a worker that had nothing left to do."""
    study = optuna.create_study()
    for value in (1.0, 2.0):
        study.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={}))
    assert sweep.launcher_exit_code([0, 1], study, 2, "/nowhere") == 0
    assert sweep.launcher_exit_code([0, 1], study, 3, "/nowhere") == 1   # a trial is missing
    assert sweep.launcher_exit_code([PREEMPTED, 0], study, 2, "/nowhere") == PREEMPTED


# --- class 3: a user error is told from a bug by its type, not by its source -------------------

OBJECTIVE = '''
import os
from pretrainx.errors import UserError
os.remove(__file__)                          # the source is gone (a checkout) before the raise
raise {error}("the toy objective's {what} is bad")
'''


@pytest.mark.parametrize("error,code", [("UserError", 2), ("ValueError", 1), ("KeyError", 1)])
def test_user_errors_are_one_line_and_bugs_keep_their_traceback_whatever_the_source(
        tmp_path, error, code):
    file = tmp_path / "toy.py"
    file.write_text(OBJECTIVE.format(error=error, what="setting"))
    p = run(train_cmd(tmp_path / "w", f"--config.objective={file}:toy"))
    assert not file.exists()                 # deleted while the command ran
    if code == 2:
        assert "UserError: the toy objective's setting is bad" in one_line_error(p)
    else:   # a plain ValueError / KeyError raised by "raise ..." is a bug: traceback, exit 1
        assert p.returncode == 1 and "Traceback" in p.stderr, p.stderr[-3000:]
        assert "pretrainx: error:" not in p.stderr


def test_pretrainx_debug_gives_the_traceback_of_a_user_error(tmp_path):
    file = tmp_path / "toy.py"
    file.write_text(OBJECTIVE.format(error="UserError", what="setting"))
    p = run(train_cmd(tmp_path / "w", f"--config.objective={file}:toy"), PRETRAINX_DEBUG="1")
    assert p.returncode == 1 and "Traceback" in p.stderr, p.stderr[-3000:]
    assert "UserError: the toy objective's setting is bad" in p.stderr
