"""The faults of experiments/robustness.md, each injected for real by experiments/robustness_probe.py
(real processes, real signals, real deleted files) and then checked: ``FAULTS`` is a list of
(what, inject) where ``inject(d, env)`` -> (exit codes, survived?, the line a user reads, all of
stderr). The tests that pin each one down are named in robustness.md's fault tables."""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

from robustness_probe import CONFIG, ROOT, TINY, last_said


def _cmd(workdir, *flags):
    return [sys.executable, "-m", "pretrainx.main", "train", "--config", CONFIG, "--workdir",
            workdir, *TINY, *flags]


def _run(cmd, env, **kw):
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, **kw)


def _start(cmd, env):
    # SIGINT as a terminal delivers it: a probe started in the background inherits it ignored
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_sigint)


def _wait_for(condition, proc, timeout=300) -> bool:
    t0 = time.time()
    while not condition():
        if proc.poll() is not None or time.time() - t0 > timeout:
            return False
        time.sleep(0.2)
    return True


def _rows(workdir):
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().endswith("}")]


def _finish(proc, sig=None):
    if sig is not None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


LONG = ["--config.train.steps=400", "--config.checkpoint.every=20", "--config.eval.every=20",
        "--config.eval.num_batches=1", "--config.train.log_every=10"]


def _ckpt(w, step):
    return lambda: os.path.isdir(os.path.join(w, "checkpoints", str(step)))


def sigterm_during_last_eval(d, env):
    w = os.path.join(d, "w")
    proc = _start(_cmd(w, "--config.eval.every=4", "--config.eval.num_batches=1000000"), env)
    _wait_for(lambda: any(r["step"] == 4 for r in _rows(w)), proc)
    time.sleep(2)
    err = _finish(proc, signal.SIGTERM)
    rerun = _run(_cmd(w, "--config.eval.every=4", "--config.eval.num_batches=2"), env)
    ok = (proc.returncode == 75 and rerun.returncode == 0 and
          any(r["step"] == 4 and "val/loss" in r for r in _rows(w)) and
          os.listdir(os.path.join(w, "checkpoints_best")) == ["4"])
    return [proc.returncode, rerun.returncode], ok, last_said(rerun.stderr, ""), err + rerun.stderr


def signal_then_rerun(sig, code):
    """The fault "``sig`` mid-run, then rerun": the run must exit ``code`` and the rerun resume."""
    def inject(d, env):
        w = os.path.join(d, "w")
        proc = _start(_cmd(w, *LONG), env)
        _wait_for(_ckpt(w, 40), proc)
        err = _finish(proc, sig)
        rerun = _run(_cmd(w, *LONG), env)
        ok = (proc.returncode == code and rerun.returncode == 0 and
              "resumed from step" in rerun.stderr)
        return [proc.returncode, rerun.returncode], ok, last_said(err, ""), err + rerun.stderr
    return inject


def kill9_then_rerun(d, env):
    w = os.path.join(d, "w")
    proc = _start(_cmd(w, *LONG), env)
    _wait_for(_ckpt(w, 40), proc)
    err = _finish(proc, signal.SIGKILL)
    rerun = _run(_cmd(w, *LONG), env)
    steps = [r["step"] for r in _rows(w) if "train/loss" in r]
    ok = rerun.returncode == 0 and steps == sorted(set(steps)) and steps[-1] == 400
    return [proc.returncode, rerun.returncode], ok, last_said(rerun.stderr, ""), err + rerun.stderr


def second_writer(d, env):
    w = os.path.join(d, "w")
    proc = _start(_cmd(w, *LONG), env)
    _wait_for(_ckpt(w, 20), proc)
    second = _run(_cmd(w, *LONG), env)
    err = _finish(proc)
    ok = second.returncode == 2 and "in use by another run" in second.stderr and proc.returncode == 0
    return [second.returncode, proc.returncode], ok, last_said(second.stderr, ""), err + second.stderr


def checkpoints_deleted_while_training(d, env):
    w = os.path.join(d, "w")
    proc = _start(_cmd(w, *LONG), env)
    _wait_for(_ckpt(w, 40), proc)
    while os.path.exists(os.path.join(w, "checkpoints")):   # the run may write into it meanwhile
        shutil.rmtree(os.path.join(w, "checkpoints"), ignore_errors=True)
    err = _finish(proc)
    ok = proc.returncode == 0 and "400" in os.listdir(os.path.join(w, "checkpoints"))
    return [proc.returncode], ok, last_said(err, ""), err


def checkpoints_deleted_then_rerun(d, env):
    w = os.path.join(d, "w")
    first = _run(_cmd(w, *LONG[1:], "--config.train.steps=60"), env)
    shutil.rmtree(os.path.join(w, "checkpoints"))
    rerun = _run(_cmd(w, *LONG[1:], "--config.train.steps=80"), env)
    again = _run(_cmd(w, *LONG[1:], "--config.train.steps=100"), env)
    steps = [r["step"] for r in _rows(w) if "train/loss" in r]
    ok = (rerun.returncode == 0 and again.returncode == 0 and steps[0] == 10 and
          steps == sorted(set(steps)) and steps[-1] == 100)
    return ([first.returncode, rerun.returncode, again.returncode], ok,
            last_said(rerun.stderr, ""), first.stderr + rerun.stderr + again.stderr)


def all_checkpoints_deleted_then_rerun(d, env):
    w = os.path.join(d, "w")
    first = _run(_cmd(w, *LONG[1:], "--config.train.steps=40"), env)
    for sub in ("checkpoints", "checkpoints_best"):
        shutil.rmtree(os.path.join(w, sub))
    before = open(os.path.join(w, "metrics.jsonl")).read()
    rerun = _run(_cmd(w, *LONG[1:], "--config.train.steps=60"), env)
    ok = rerun.returncode == 2 and open(os.path.join(w, "metrics.jsonl")).read() == before
    return [first.returncode, rerun.returncode], ok, last_said(rerun.stderr, ""), rerun.stderr


def metrics_deleted_while_training(d, env):
    w = os.path.join(d, "w")
    proc = _start(_cmd(w, *LONG), env)
    _wait_for(_ckpt(w, 40), proc)
    os.remove(os.path.join(w, "metrics.jsonl"))
    err = _finish(proc)
    rerun = _run(_cmd(w, *LONG[1:], "--config.train.steps=420"), env)
    ok = proc.returncode == 0 and rerun.returncode == 0
    return [proc.returncode, rerun.returncode], ok, last_said(err, ""), err + rerun.stderr


def disk_full_on_rerun(d, env):
    w = os.path.join(d, "w")
    first = _run(_cmd(w, *LONG[1:], "--config.train.steps=40"), env)
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))   # ~20 kB files
    rerun = _run(_cmd(w, *LONG[1:], "--config.train.steps=80"), env, preexec_fn=limit)
    ok = rerun.returncode in (1, 2) and "pretrainx: error:" in rerun.stderr
    return [first.returncode, rerun.returncode], ok, last_said(rerun.stderr, ""), rerun.stderr


def sigterm_sweep_between_trials(d, env):
    w = os.path.join(d, "w")
    cmd = [sys.executable, "-m", "pretrainx.main", "sweep", "--config", CONFIG, "--workdir", w,
           "--trials", "3", *[a for a in TINY if not a.startswith("--config.eval.every")],
           "--config.eval.every=4"]
    proc = _start(cmd, env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("trial 000"):
            break
    err = _finish(proc, signal.SIGTERM)
    trials = os.listdir(os.path.join(w, "trials"))
    ok = proc.returncode == 75 and len(trials) <= 2 and any("wall=" in x for x in lines)
    return [proc.returncode], ok, last_said(err, ""), err


FAULTS = [
    ("SIGTERM during the last step's eval, then rerun", sigterm_during_last_eval),
    ("SIGTERM mid-run, then rerun", signal_then_rerun(signal.SIGTERM, 75)),
    ("SIGINT (Ctrl-C) mid-run, then rerun", signal_then_rerun(signal.SIGINT, 130)),
    ("kill -9 mid-run, then rerun", kill9_then_rerun),
    ("a second writer while the first trains", second_writer),
    ("checkpoints/ deleted while training", checkpoints_deleted_while_training),
    ("checkpoints/ deleted, then two reruns with more steps", checkpoints_deleted_then_rerun),
    ("checkpoints/ and checkpoints_best/ deleted, then rerun", all_checkpoints_deleted_then_rerun),
    ("metrics.jsonl deleted while training, then rerun", metrics_deleted_while_training),
    ("disk full (RLIMIT_FSIZE 20 kB) on a rerun", disk_full_on_rerun),
    ("SIGTERM to a sweep between trials", sigterm_sweep_between_trials),
]
