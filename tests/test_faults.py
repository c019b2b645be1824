"""Issue 9's faults with real processes: a second writer in the same workdir, the lock a kill -9
leaves behind, a SIGTERM during a long evaluation, and a SIGTERM that reaches only one of two
processes, a kill -9 in the middle of a save. Each run is the tiny byte-level GPT of test_cli.py."""
import os
import signal
import subprocess
import time

import pytest

import test_cli
import test_train
import test_multiprocess

PREEMPTED = 75


def wait_until(condition, proc, what, timeout=240):
    t0 = time.time()
    while not condition():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"exited {proc.returncode} before {what}:\n{out[-3000:]}")
        assert time.time() - t0 < timeout, f"{what} never happened"
        time.sleep(0.2)


def start(cmd):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_second_writer_is_refused_and_a_killed_run_s_lock_is_taken_over(tmp_path):
    cmd = test_cli.train_cmd(tmp_path, "--config.train.steps=100000", "--config.checkpoint.every=5")
    first = start(cmd)
    try:
        wait_until(lambda: (tmp_path / "checkpoints" / "5").is_dir(), first, "the first save")
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"in use by another run (pid {first.pid}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    finally:
        first.send_signal(signal.SIGKILL)          # leaves run.lock naming a dead pid
        first.wait()
    assert str(first.pid) in (tmp_path / "run.lock").read_text()
    last = max(int(s) for s in os.listdir(tmp_path / "checkpoints") if s.isdigit())
    rerun = subprocess.run(test_cli.train_cmd(tmp_path, f"--config.train.steps={last + 3}",
                                              "--config.checkpoint.every=5"),
                           capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"took over the stale lock of pid {first.pid}" in rerun.stderr
    assert sorted(test_cli.logged_losses(tmp_path)) == list(range(1, last + 4))


@pytest.mark.slow
def test_sigterm_during_a_long_eval_does_not_wait_for_it(tmp_path):
    # An eval of 10^6 validation batches (hours here) at step 5; SIGTERM once it has begun.
    cmd = test_cli.train_cmd(tmp_path, "--config.train.steps=100000", "--config.eval.every=5",
                             "--config.eval.num_batches=1000000", "--config.checkpoint.every=1000")
    proc = start(cmd)
    try:
        # step 5's train row is flushed right before its eval starts
        wait_until(lambda: 5 in test_cli.logged_losses(tmp_path) if (tmp_path / "metrics.jsonl")
                   .exists() else False, proc, "step 5")
        time.sleep(2)
        sent = time.time()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == PREEMPTED, out[-3000:]
    assert time.time() - sent < 60 and "eval skipped" in out
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["5"]


@pytest.mark.slow
@pytest.mark.skipif(not test_multiprocess._gloo_available(), reason="no gloo CPU collectives")
def test_sigterm_to_one_of_two_processes_saves_and_stops_both(tmp_path):
    port = test_multiprocess._free_port()
    flags = [f"--coordinator_address=localhost:{port}", "--num_processes=2",
             "--config.train.steps=100000", "--config.checkpoint.every=10",
             "--config.eval.every=0", "--config.train.preemption_check_every=5"]
    procs = [test_multiprocess._launch(tmp_path / "run", 4, flags + [f"--process_id={i}"],
                                       tmp_path / f"p{i}.log") for i in range(2)]
    try:
        wait_until(lambda: (tmp_path / "run" / "checkpoints" / "10").is_dir(), procs[0][0],
                   "the first save")
        procs[1][0].send_signal(signal.SIGTERM)     # only the second process is told
        for proc, _ in procs:
            proc.wait(timeout=120)                  # a hang fails here
    finally:
        test_multiprocess.stop(procs)
    logs = [open(tmp_path / f"p{i}.log").read() for i in range(2)]
    assert [p.returncode for p, _ in procs] == [PREEMPTED, PREEMPTED], [log[-2000:] for log in logs]
    saved = sorted(int(s) for s in os.listdir(tmp_path / "run" / "checkpoints") if s.isdigit())
    assert saved[-1] % 5 == 0 and saved[-1] > 10, saved    # an agreed step, saved by both


@pytest.mark.slow
def test_kill_9_during_a_save_then_rerun_is_bit_identical(tmp_path):
    """kill -9 while Orbax writes a checkpoint (its temporary folder exists), then the same
    command: the losses and metrics.jsonl equal an uninterrupted run's, row for row."""
    flags = ("--config.train.steps=30", "--config.checkpoint.every=2")
    reference = subprocess.run(test_cli.train_cmd(tmp_path / "ref", *flags), capture_output=True,
                               text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr[-2000:]
    run, ckpts = tmp_path / "run", tmp_path / "run" / "checkpoints"
    proc = start(test_cli.train_cmd(run, *flags))
    try:
        caught = None
        while caught is None and proc.poll() is None:    # 15 saves: poll fast for a write in flight
            names = os.listdir(ckpts) if ckpts.is_dir() else []
            caught = next((n for n in names if "tmp" in n), None)
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert caught is not None, "never saw a save in flight"
    assert [n for n in os.listdir(ckpts) if "tmp" in n], "the save finished before the kill"
    rerun = subprocess.run(test_cli.train_cmd(run, *flags), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    ref, got = test_cli.logged_losses(tmp_path / "ref"), test_cli.logged_losses(run)
    assert got == ref
    assert test_train.metric_rows(run) == test_train.metric_rows(tmp_path / "ref")
