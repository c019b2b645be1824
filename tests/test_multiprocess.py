"""Two JAX processes on one CPU machine (4 devices each, gloo collectives) train exactly as one
process with all 8 devices: same per-step losses, and the checkpoint they write together is one
checkpoint that a single process restores to the same weights. A masked LM whose masks are drawn
on the host gives the same masks and losses with 1 and 2 processes."""
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from pretrainx.core import inference

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
CONFIG = os.path.join(ROOT, "configs/gpt/shakespeare_char.py:smoke")
STEPS = 20
TIMEOUT = 240     # seconds per run: a hung collective fails the test instead of blocking CI
# A tiny byte-level GPT on the standard library's source (no data file needed); global batch 32
# over data=8: 4 rows per device, 16 rows per process in the 2-process run.
TESTS = os.path.dirname(os.path.abspath(__file__))
# `pretrainx` with the test objectives registered (tests/toy_objectives.py)
WITH_TOYS = ("import sys; sys.path.insert(0, %r); import toy_objectives; "
             "from pretrainx.main import cli; sys.exit(cli())" % TESTS)
TINY = ["--config.data.path=stdlib", "--config.data.max_bytes=300000", "--config.data.tokenizer=byte",
        "--config.model.vocab_size=256", "--config.model.num_layers=2", "--config.model.embed_dim=32",
        "--config.model.num_heads=4", "--config.model.max_len=32", "--config.data.seq_len=32",
        "--config.batch_size=32", "--config.eval.batch_size=32", "--config.eval.num_batches=2",
        "--config.mesh.data=8", "--config.mesh.fsdp=1", "--config.mesh.tensor=1",
        "--config.train.log_every=1", "--config.train.progress=False",
        "--config.optimizer.warmup_steps=5", "--config.optimizer.decay_steps=40"]


def steps_flags(steps):
    return [f"--config.train.steps={steps}", f"--config.eval.every={steps}",
            f"--config.checkpoint.every={steps}"]


def _gloo_available() -> bool:
    try:
        from jax._src.lib import _jax
    except ImportError:
        try:
            from jax._src.lib import xla_extension as _jax
        except ImportError:
            return False
    return hasattr(_jax, "make_gloo_tcp_collectives")


pytestmark = pytest.mark.skipif(not _gloo_available(),
                                reason="this jaxlib has no gloo CPU collectives")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("JAX_COORDINATOR") and k not in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID")}
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_NUM_CPU_DEVICES=str(devices), JAX_PLATFORMS="cpu")
    return env


def _launch(workdir, devices, extra, log, env_extra=None, entry=("-m", "pretrainx.main")):
    cmd = [sys.executable, *entry, "train", "--config", CONFIG,
           "--workdir", str(workdir), *TINY, *extra]
    f = open(log, "w")
    env = {**_env(devices), **(env_extra or {})}
    return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT), f


def stop(procs):
    """Kill whichever of ``_launch``'s (process, log file) pairs still runs; close the logs."""
    for proc, f in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        f.close()


def _run_all(runs):
    """Start every (workdir, devices, extra flags, log[, env]) together; all must exit 0 within
    TIMEOUT seconds."""
    procs = [_launch(*r) for r in runs]
    try:
        for (proc, _), (_, _, _, log, *_) in zip(procs, runs):
            try:
                proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{log} still running after {TIMEOUT}s (hung?):\n"
                            + open(log).read()[-3000:])
            assert proc.returncode == 0, f"{log} exited {proc.returncode}:\n" + open(log).read()[-3000:]
    finally:
        stop(procs)


def _metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("multiprocess")
    one, two = base / "one_process", base / "two_processes"
    port = _free_port()
    # Process 0 is told by flags, process 1 by environment variables: both ways are tested.
    flags = [f"--coordinator_address=localhost:{port}", "--num_processes=2", "--process_id=0"]
    env = {"JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "JAX_NUM_PROCESSES": "2",
           "JAX_PROCESS_ID": "1"}
    _run_all([(two, 4, flags + steps_flags(STEPS), base / "p0.log"),
              (two, 4, ["--distributed"] + steps_flags(STEPS), base / "p1.log", env)])
    _run_all([(one, 8, steps_flags(STEPS), base / "single.log")])
    return one, two


@pytest.mark.slow
def test_two_processes_log_the_losses_of_one(runs):
    one, two = map(_metrics, runs)
    steps_two = [r["step"] for r in two if "train/loss" in r]
    assert steps_two == list(range(1, STEPS + 1)), "each step logged once (by process 0 only)"
    loss_one = {r["step"]: r["train/loss"] for r in one if "train/loss" in r}
    loss_two = {r["step"]: r["train/loss"] for r in two if "train/loss" in r}
    assert loss_one.keys() == loss_two.keys()
    np.testing.assert_allclose([loss_two[s] for s in sorted(loss_two)],
                               [loss_one[s] for s in sorted(loss_one)], rtol=1e-5)
    val_one = [r["val/loss"] for r in one if "val/loss" in r]
    val_two = [r["val/loss"] for r in two if "val/loss" in r]
    assert len(val_two) == 1
    np.testing.assert_allclose(val_two, val_one, rtol=1e-5)


@pytest.mark.slow
def test_two_process_checkpoint_restores_in_one_process(runs):
    one, two = runs
    assert sorted(os.listdir(two / "checkpoints")) == [str(STEPS)]   # one checkpoint, no leftovers
    assert jax.process_count() == 1 and jax.device_count() == 8
    _, ctx_two, _ = inference.load_trained_run(str(two), "latest")
    _, ctx_one, _ = inference.load_trained_run(str(one), "latest")
    assert ctx_two.step == ctx_one.step == STEPS
    leaves_two, tree_two = jax.tree.flatten(jax.device_get(ctx_two.params))
    leaves_one, tree_one = jax.tree.flatten(jax.device_get(ctx_one.params))
    assert tree_two == tree_one
    for a, b in zip(leaves_two, leaves_one):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


MLM_STEPS = 6
MLM = ["--config.objective=toy_masked_lm", "--config.model.vocab_size=257",
       "--config.model.attention_kind=bidirectional", *steps_flags(MLM_STEPS)]


@pytest.fixture(scope="module")
def mlm_runs(tmp_path_factory):
    """toy_masked_lm (tests/toy_objectives.py): masks drawn on the host, for the global batch."""
    base = tmp_path_factory.mktemp("masked_lm")
    one, two = base / "one_process", base / "two_processes"
    port = _free_port()
    flags = [f"--coordinator_address=localhost:{port}", "--num_processes=2"]
    toys = ("-c", WITH_TOYS)
    _run_all([(two, 4, flags + ["--process_id=0"] + MLM, base / "p0.log", None, toys),
              (two, 4, flags + ["--process_id=1"] + MLM, base / "p1.log", None, toys)])
    _run_all([(one, 8, MLM, base / "single.log", None, toys)])
    return _metrics(one), _metrics(two)


@pytest.mark.slow
def test_host_masks_and_losses_do_not_depend_on_the_process_count(mlm_runs):
    one, two = mlm_runs
    for key in ("train/mask_position", "train/loss", "val/mask_position", "val/loss"):
        a = [r[key] for r in one if key in r]
        b = [r[key] for r in two if key in r]
        assert len(a) == len(b) == (MLM_STEPS if key.startswith("train") else 1), key
        np.testing.assert_allclose(b, a, rtol=1e-5, err_msg=key)
    # the masking rate follows the step (0.15 -> 0.3): the masks are not all drawn alike
    positions = [r["train/mask_position"] for r in one if "train/mask_position" in r]
    assert len(set(np.round(positions, 3))) == MLM_STEPS
