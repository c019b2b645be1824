"""The CPU host's device count (core/host_devices.py): which count the default mesh asks for, that
a fresh ``pretrainx train`` process gets it, and that a count set by the user is left alone."""
import json
import os
import subprocess
import sys

import pytest

from pretrainx.config import defaults, load as config_load
from pretrainx.core import host_devices

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
BABY_GPT = os.path.join(ROOT, "configs/gpt/shakespeare_char.py:cpu")


def config(**changes):
    c = defaults.with_defaults(config_load.load(BABY_GPT))
    return config_load.override(c, changes)


def test_auto_count_divides_every_batch_and_stops_at_the_cores():
    assert host_devices.auto_count(config(), cores=2) == 2          # batch 12, eval 12
    assert host_devices.auto_count(config(), cores=1) == 1
    assert host_devices.auto_count(config(), cores=16) == 6         # at most 8, dividing 12
    assert host_devices.auto_count(config(batch_size=12, **{"eval.batch_size": 9}), cores=8) == 3
    # micro-batches of 3 rows: no split of 12 rows over 2 devices leaves both of them whole
    assert host_devices.auto_count(config(**{"optimizer.grad_accum": 4}), cores=2) == 1
    assert host_devices.auto_count(config(batch_size=7, **{"eval.batch_size": 7}), cores=2) == 1


def test_a_mesh_laid_out_by_hand_keeps_its_devices():
    assert host_devices.auto_count(config(**{"mesh.data": 2}), cores=8) == 1
    assert host_devices.auto_count(config(**{"mesh.fsdp": -1, "mesh.data": 1}), cores=8) == 1


def test_a_count_already_set_is_left_alone():
    # this process's backend is up (8 devices, tests/conftest.py): nothing may change
    assert host_devices.request(config()) is None
    assert host_devices.request(config(**{"mesh.host_devices": 4})) is None


def _train(tmp_path, env_changes: dict, *overrides: str) -> tuple[str, dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env.update(env_changes)
    workdir = tmp_path / "run"
    cmd = [sys.executable, "-m", "pretrainx.main", "train", "--config", BABY_GPT,
           "--workdir", str(workdir), "--config.train.steps=2", "--config.eval.every=0",
           "--config.model.num_layers=1", "--config.train.progress=false", *overrides]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    provenance = json.loads((workdir / "provenance.json").read_text())
    return done.stderr, provenance


@pytest.mark.slow      # two fresh `pretrainx train` processes of 2 steps
def test_a_fresh_train_process_splits_the_batch_over_the_cores(tmp_path):
    expected = host_devices.auto_count(config(), host_devices.usable_cores())
    stderr, provenance = _train(tmp_path / "auto", {})
    assert provenance["device_count"] == expected, provenance
    if expected > 1:
        assert f"{expected} CPU devices (mesh.host_devices=0" in stderr
    stderr, provenance = _train(tmp_path / "one", {}, "--config.mesh.host_devices=1")
    assert provenance["device_count"] == 1
    _, provenance = _train(tmp_path / "env", {"JAX_NUM_CPU_DEVICES": "3"})
    assert provenance["device_count"] == 3            # the environment's count wins
