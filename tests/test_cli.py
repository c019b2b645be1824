"""The ``pretrainx`` command end to end: SIGKILL + rerun resumes exactly, SIGTERM saves and exits,
bad input gets a one-line error, ``sample`` decodes from a trained workdir."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pretrainx import main

import test_train   # tests/ is on sys.path under pytest's default import mode

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
CONFIG = os.path.join(ROOT, "configs/gpt/shakespeare_char.py:smoke")
# A tiny byte-level GPT on the standard library's source: real text, no data file needed.
TINY = ["--config.data.path=stdlib", "--config.data.max_bytes=300000", "--config.data.tokenizer=byte",
        "--config.model.vocab_size=256", "--config.model.num_layers=2", "--config.model.embed_dim=32",
        "--config.model.num_heads=4", "--config.model.max_len=32", "--config.data.seq_len=32",
        "--config.batch_size=16", "--config.eval.batch_size=16", "--config.eval.every=0",
        "--config.train.log_every=1", "--config.train.progress=False",
        "--config.optimizer.warmup_steps=5", "--config.optimizer.decay_steps=40"]


def train_cmd(workdir, *extra):
    return [sys.executable, "-m", "pretrainx.main", "train", "--config", CONFIG,
            "--workdir", str(workdir), *TINY, *extra]


def logged_losses(workdir):
    """step -> loss; a step logged twice (before a crash and after resume) keeps the later one."""
    out = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if "train/loss" in row:
                out[row["step"]] = row["train/loss"]
    return out


def wait_for(path, proc, timeout=240):
    t0 = time.time()
    while not os.path.isdir(path):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    subprocess.run(train_cmd(workdir, "--config.train.steps=40", "--config.checkpoint.every=10"),
                   check=True, capture_output=True, text=True, timeout=600)
    return workdir


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_with_identical_losses(reference_run, tmp_path):
    cmd = train_cmd(tmp_path, "--config.train.steps=40", "--config.checkpoint.every=10")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(tmp_path / "checkpoints" / "20", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max(logged_losses(tmp_path))
    assert killed_at < 40, "the run finished before it could be killed"
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    ref, got = logged_losses(reference_run), logged_losses(tmp_path)
    assert sorted(got) == list(range(1, 41))
    for step in range(21, 41):         # every step replayed after the resume
        assert got[step] == ref[step], (step, got[step], ref[step])
    # ... and the record reads as one run: row for row the uninterrupted run's (timing aside)
    assert test_train.metric_rows(tmp_path) == test_train.metric_rows(reference_run)


@pytest.mark.slow
def test_sigterm_saves_and_exits_with_the_preempted_code(tmp_path):
    proc = subprocess.Popen(train_cmd(tmp_path, "--config.train.steps=100000",
                                      "--config.checkpoint.every=10"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(tmp_path / "checkpoints" / "10", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-2000:]      # not 0: a scheduler tells it from a finished run
    assert "SIGTERM: saved step" in out + err
    saved = sorted(int(s) for s in os.listdir(tmp_path / "checkpoints") if s.isdigit())
    assert saved[-1] == max(logged_losses(tmp_path)), (saved, max(logged_losses(tmp_path)))


def test_sample_decodes_from_the_trained_run(reference_run, capsys):
    assert main.cli(["sample", "--workdir", str(reference_run), "--prompt", "def ",
                     "--max-new-tokens", "16", "--temperature", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("def ") and len(out.rstrip("\n").encode()) >= 4 + 1


def test_eval_reports_val_metrics_of_the_trained_run(reference_run, capsys):
    assert main.cli(["eval", "--workdir", str(reference_run)]) == 0
    lines = dict(line.split() for line in capsys.readouterr().out.strip().splitlines())
    assert 0 < float(lines["val/loss"]) < 5.55    # below a uniform guess over 256 bytes (ln 256)


def test_eval_takes_data_and_eval_overrides_in_the_one_syntax(reference_run, capsys):
    assert main.cli(["eval", "--workdir", str(reference_run), "--config.eval.num_batches=1"]) == 0
    one_batch = dict(line.split() for line in capsys.readouterr().out.strip().splitlines())
    assert 0 < float(one_batch["val/loss"]) < 5.55
    err = one_line_error(capsys, ["eval", "--workdir", str(reference_run),
                                  "--config.eval.nonsense=1"])
    assert "nonsense" in err and "known:" in err
    err = one_line_error(capsys, ["eval", "--workdir", str(reference_run),
                                  "--config.optimizer.lr=1.0"])
    assert "only --config.data.* and --config.eval.*" in err


def one_line_error(capsys, argv):
    code = main.cli(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    return err


def test_unknown_config_key_is_a_one_line_error(tmp_path, capsys):
    err = one_line_error(capsys, ["train", "--config", CONFIG, "--workdir", str(tmp_path),
                                  "--config.optimizer.lrr=3e-4"])
    assert "lrr" in err


def test_missing_data_file_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "nope.txt"
    err = one_line_error(capsys, ["train", "--config", CONFIG, "--workdir", str(tmp_path / "w"),
                                  f"--config.data.path={missing}"])
    assert str(missing) in err and "not found" in err


def test_empty_data_file_is_a_one_line_error(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    err = one_line_error(capsys, ["train", "--config", CONFIG, "--workdir", str(tmp_path / "w"),
                                  f"--config.data.path={empty}"])
    assert str(empty) in err and "empty" in err


def test_missing_config_file_is_a_one_line_error(tmp_path, capsys):
    err = one_line_error(capsys, ["train", "--config", str(tmp_path / "no_config.py"),
                                  "--workdir", str(tmp_path)])
    assert "no_config.py" in err
