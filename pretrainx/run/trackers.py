"""Experiment trackers beside ``metrics.jsonl`` and TensorBoard: Weights & Biases in offline
mode and MLflow with a local store (one SQLite file: MLflow 3 refuses its old ``mlruns/`` file
store unless told to), each switched on by one field of ``config.trackers`` (off by
default) and imported only then, so a run without them neither needs nor touches the packages.

Each receives the run's config once (W&B's run config; MLflow's params, flattened to dotted
keys) and every row the ``MetricWriter`` writes. Both write inside the workdir (``wandb/``,
``mlflow.db``) and need no network: ``wandb sync WORKDIR/wandb/offline-run-*`` uploads later,
``mlflow ui --backend-store-uri sqlite:///WORKDIR/mlflow.db`` reads the store.
"""
from __future__ import annotations

import math
import os

from pretrainx.run import rundir


class WandbTracker:
    def __init__(self, workdir: str, config: dict):
        import wandb
        self.run = wandb.init(mode="offline", dir=workdir, config=config,
                              name=os.path.basename(os.path.normpath(workdir)),
                              project="pretrainx", reinit="create_new")

    def log(self, step: int, scalars: dict) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowTracker:
    def __init__(self, workdir: str, config: dict):
        import mlflow
        self.mlflow = mlflow
        self.client = mlflow.MlflowClient(tracking_uri=store_uri(workdir))
        name = os.path.basename(os.path.normpath(workdir))
        experiment = (self.client.get_experiment_by_name("pretrainx")
                      or self.client.get_experiment(self.client.create_experiment("pretrainx")))
        self.run_id = self.client.create_run(experiment.experiment_id, run_name=name).info.run_id
        params = [mlflow.entities.Param(k, str(v)[:6000]) for k, v in rundir.flatten(config).items()]
        for start in range(0, len(params), 100):      # MLflow takes at most 100 per batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def log(self, step: int, scalars: dict) -> None:
        metrics = [self.mlflow.entities.Metric(k, v, 0, step) for k, v in scalars.items()
                   if math.isfinite(v)]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def store_uri(workdir: str) -> str:
    """The MLflow tracking URI of a run's store."""
    return "sqlite:///" + os.path.abspath(rundir.path(workdir, rundir.MLFLOW))


TRACKERS = {"wandb": WandbTracker, "mlflow": MlflowTracker}


def from_config(config, workdir: str) -> list:
    """The trackers ``config.trackers`` switches on, each given the run's config."""
    plain = config.to_dict()
    return [make(workdir, plain) for name, make in TRACKERS.items() if config.trackers[name]]
