"""Experiment trackers: W&B (offline) and MLflow (a local SQLite store) each receive a run's config and
metrics; with both off (the default) the run writes nothing of theirs and imports neither."""
import json
import subprocess
import sys

import pytest

import toy_objectives as toys
from pretrainx.core import train
from pretrainx.run import rundir


def metric_rows(workdir):
    return {r["step"]: r for r in map(json.loads, open(rundir.path(str(workdir), rundir.METRICS)))}


def tiny_run(workdir, **trackers):
    config = toys.config("clm", **{"train.steps": 2, "eval.every": 2, "checkpoint.every": 2,
                                   **{f"trackers.{k}": v for k, v in trackers.items()}})
    train.run(config, str(workdir))
    return config, metric_rows(workdir)


@pytest.mark.slow
def test_mlflow_local_store_receives_the_config_and_metrics(tmp_path):
    import mlflow
    config, rows = tiny_run(tmp_path, mlflow=True)
    from pretrainx.run import trackers
    client = mlflow.MlflowClient(tracking_uri=trackers.store_uri(str(tmp_path)))
    run, = client.search_runs([client.get_experiment_by_name("pretrainx").experiment_id])
    assert run.data.params["optimizer.lr"] == str(config.optimizer.lr)
    assert run.data.params["objective"] == "clm"
    history = client.get_metric_history(run.info.run_id, "val/loss")
    assert [(m.step, m.value) for m in history] == [(2, rows[2]["val/loss"])]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2]


def wandb_records(path):
    """The protobuf records of an offline run's ``.wandb`` file. wandb 0.31 ships no Python
    reader: the file is a 7-byte header, then LevelDB's log format (32 KiB blocks of records,
    each a 7-byte header: CRC, length, type 1 full | 2 first | 3 middle | 4 last)."""
    import struct
    from wandb.proto import wandb_internal_pb2
    data, pos, part, records = open(path, "rb").read(), 7, b"", []
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:                  # a block's tail too short for a header
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        part, pos = part + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(part))
            part = b""
    return records


@pytest.mark.slow
def test_wandb_offline_receives_the_config_and_metrics(tmp_path):
    config, rows = tiny_run(tmp_path, wandb=True)
    run_file, = (tmp_path / rundir.WANDB).glob("offline-run-*/*.wandb")
    logged, settings = {}, {}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                     for i in record.history.item}
            logged[items["_step"]] = items
        elif kind == "run":
            settings.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
    assert settings["optimizer"]["lr"] == config.optimizer.lr
    assert settings["objective"] == "clm"
    assert logged[2]["val/loss"] == rows[2]["val/loss"]
    assert logged[1]["train/loss"] == rows[1]["train/loss"]


@pytest.mark.slow
def test_without_trackers_nothing_of_theirs_is_imported_or_written(tmp_path):
    code = (f"import sys; sys.path[:0] = {sys.path!r}; import toy_objectives as toys; "
            f"from pretrainx.core import train; "
            f"train.run(toys.config('clm', **{{'train.steps': 1}}), {str(tmp_path)!r}); "
            f"print(sorted(m for m in ('wandb', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert not (tmp_path / rundir.WANDB).exists() and not (tmp_path / rundir.MLFLOW).exists()
