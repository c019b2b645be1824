"""``config.init_from``: a finished causal LM's parameters go into a new run with a value head (and
a frozen reference copy), a killed run resumes its own checkpoint instead of reloading, shape
mismatches are refused in one line; frozen parameters are written once; provenance is recorded."""
import json
import os
import re
import shutil
import subprocess

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from pretrainx.core import init_from

from pretrainx.run import provenance

from pretrainx.core import train

import toy_objectives as toys
from test_train import losses

MAPPING = (("params", "params/backbone"), ("params", "frozen/reference"))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A finished 3-step causal LM with its own output head (untied), as host arrays."""
    workdir = tmp_path_factory.mktemp("source")
    cfg = toys.config("clm", **{"model.tie_embeddings": False, "train.steps": 3,
                                "checkpoint.every": 3})
    result = train.run(cfg, str(workdir))
    return workdir, jax.device_get(result.state.params)


def value_config(source_dir, **updates):
    return toys.config("toy_value", **{"init_from.workdir": str(source_dir),
                                       "init_from.mapping": MAPPING, "checkpoint.every": 2,
                                       "model.tie_embeddings": False, **updates})


def assert_same(a, b):
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(a), jax.device_get(b))


def test_loads_a_finished_run_under_a_new_head(source):
    source_dir, source_params = source
    cfg = value_config(source_dir)
    built = train.setup(cfg)
    fresh_head = jax.device_get(built.state.params["value_head"])
    state = init_from.apply(built.state, built.objective, init_from.InitFrom.from_config(cfg))
    trunk = {k: v for k, v in source_params.items() if k != "lm_head"}   # the hook dropped it
    assert_same(state.params["backbone"], trunk)
    assert_same(state.frozen["reference"], trunk)
    assert_same(state.params["value_head"], fresh_head)                 # a new head: fresh init
    spec = state.params["backbone"]["h_0"]["mlp"]["fc"]["kernel"].sharding
    assert spec == built.shardings.params["backbone"]["h_0"]["mlp"]["fc"]["kernel"]


def test_without_head_surgery_the_old_head_is_refused(source, monkeypatch):
    monkeypatch.setattr(toys.ToyValue, "adapt_init_from", lambda self, s, t: s)
    cfg = value_config(source[0])
    built = train.setup(cfg)
    with pytest.raises(init_from.InitFromError, match=r"params/lm_head/kernel has no place"):
        init_from.apply(built.state, built.objective, init_from.InitFrom.from_config(cfg))


def test_a_shape_mismatch_is_a_one_line_error(source):
    cfg = value_config(source[0], **{"model.embed_dim": 32})
    built = train.setup(cfg)
    with pytest.raises(init_from.InitFromError) as e:
        init_from.apply(built.state, built.objective, init_from.InitFrom.from_config(cfg))
    message = str(e.value)
    assert "\n" not in message, message
    assert re.fullmatch(r"init_from: params/\S+ has shape \(.*16.*\) in the source run but "
                        r"params/backbone/\S+ is \(.*32.*\) here", message), message
    assert isinstance(e.value, ValueError)     # the CLI prints ValueErrors as one line


@pytest.fixture(scope="module")
def value_runs(source, tmp_path_factory):
    """An uninterrupted fine-tuning run, and one killed after step 3 (saved at 2) whose source
    run is deleted before it is started again."""
    source_dir, _ = source
    base = tmp_path_factory.mktemp("value")
    cfg = value_config(source_dir)
    full = train.run(cfg, str(base / "full"))
    moved_source = base / "source_copy"
    shutil.copytree(source_dir, moved_source)
    cfg = value_config(moved_source)
    train.run(cfg, str(base / "killed"), stop_after=3)
    frozen_files = {p: os.stat(p).st_mtime_ns for p in _files(base / "killed" / "frozen")}
    shutil.rmtree(moved_source)              # reloading it now would fail
    resumed = train.run(cfg, str(base / "killed"))
    return full, resumed, base / "killed", frozen_files


def _files(directory):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(directory) for f in fs)


@pytest.mark.slow
def test_a_killed_run_resumes_its_own_checkpoint_not_the_source(value_runs, source):
    full, resumed, _, _ = value_runs
    after = losses(resumed.history)
    assert sorted(after) == [3, 4]
    assert all(after[s] == losses(full.history)[s] for s in after), (after, losses(full.history))
    assert_same(resumed.state.params, full.state.params)
    trunk = {k: v for k, v in source[1].items() if k != "lm_head"}
    assert_same(resumed.state.frozen["reference"], trunk)     # restored from workdir/frozen


@pytest.mark.slow
def test_frozen_parameters_are_written_once_not_at_every_save(value_runs):
    _, _, workdir, frozen_files = value_runs
    assert frozen_files, "the first save writes workdir/frozen"
    assert {p: os.stat(p).st_mtime_ns for p in _files(workdir / "frozen")} == frozen_files
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]
    for step in ("2", "4"):
        tree = ocp.PyTreeCheckpointer().metadata(str(workdir / "checkpoints" / step / "state"))
        saved = tree.item_metadata.tree
        assert saved["frozen"] == {} and saved["params"]["backbone"], step


@pytest.mark.slow
def test_provenance_records_the_start_and_the_resume(value_runs):
    _, _, workdir, _ = value_runs
    record = json.load(open(workdir / provenance.FILENAME))
    head = subprocess.run(["git", "-C", os.path.dirname(__file__), "rev-parse", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    assert record["git_commit"] == head and isinstance(record["git_dirty"], bool)
    assert record["packages"]["jax"] == jax.__version__ and record["packages"]["flax"]
    assert record["device_kind"] == jax.devices()[0].device_kind
    assert record["device_count"] == 8 and record["process_count"] == 1
    assert record["resumed_from_step"] is None and record["started_at"]
    (resume,) = record["resumes"]
    assert resume["resumed_from_step"] == 2 and resume["git_commit"] == head
    assert os.path.exists(workdir / "config.json")


def test_a_relative_source_workdir_reads_the_same_arrays(source, monkeypatch):
    source_dir, source_params = source
    monkeypatch.chdir(source_dir.parent)         # init_from.workdir="workdirs/run" from the repo
    read, step = init_from.read_source(init_from.InitFrom(source_dir.name))
    assert step == 3
    assert_same(read["params"], source_params)
