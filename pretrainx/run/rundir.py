"""The run directory: the name of every file a run keeps in its workdir, and the one reader and
writer of its records. Every other module (the loop, ``eval`` / ``sample``, sweeps, plots, the
reproduction registry, the scripts under ``experiments/``) goes through here.

``config.json``. The resolved config, rewritten at every start. A workdir with a checkpoint is
resumed only under the config it was trained with: before anything in the workdir is rewritten,
the new config is compared with the saved one and a difference outside ``SAFE_CHANGES`` stops the
run with one line naming the fields (the saved config and the checkpoints stay as they were).
Safe changes are those that do not change what is trained: how long, how often to log / evaluate
/ save, the mesh the same state is laid out on, the attention kernel, what samples show. To
change anything else, start a new workdir with ``init_from.workdir`` pointing at this one.

``metrics.jsonl``. One JSON object per logged step: ``{"step": n, "train/loss": ..., ...}``.
A run killed after its last save has logged steps the resumed run logs again: ``trim_metrics``
drops the rows past the restored step when the run restarts, so the file of a killed-and-resumed
run equals the uninterrupted run's row for row (timing fields aside). Readers skip a line a kill
cut short and, where a step was logged twice, keep the later row (the one that continued into
the final state).
"""
from __future__ import annotations

import json
import logging
import math
import os

import jax

from pretrainx.config import defaults as config_defaults
from pretrainx.config.check import ConfigError

log = logging.getLogger(__name__)

CONFIG = "config.json"
METRICS = "metrics.jsonl"
PROVENANCE = "provenance.json"
LOCK = "run.lock"
CHECKPOINTS = "checkpoints"
CHECKPOINTS_BEST = "checkpoints_best"
FROZEN = "frozen"                  # the frozen arrays, written once at the first save
TENSORBOARD = "tensorboard"
SAMPLES = "samples"                # text samples and image grids, one file per step
WANDB = "wandb"                    # Weights & Biases' offline runs (trackers.wandb)
MLFLOW = "mlflow.db"               # MLflow's store, one SQLite file (trackers.mlflow)
# tokenizer.json is named by the data layer (``data.tokenizer.FILENAME``: any saved vocabulary),
# and samples/step_NNNNNN.* by the evaluators that write them (objectives may not import run/).


def path(workdir: str, name: str) -> str:
    """``workdir/name`` for one of the names above."""
    return os.path.join(workdir, name)


# --- config.json -------------------------------------------------------------------------------

#: config fields a resume may change: dotted names, or a section ending in ".*"
SAFE_CHANGES = (
    "train.steps", "train.log_every", "train.progress", "train.preemption_check_every",
    "eval.every",
    "checkpoint.every", "checkpoint.keep", "checkpoint.async_save",   # when and how to save
    # which eval metric picks the best checkpoint: safe only while none is kept (a misspelt
    # metric keeps none; a kept one was ranked by the old metric, which Orbax would look up)
    "checkpoint.best_metric", "checkpoint.best_mode",
    "eval.num_batches",             # how much held-out data an eval reads (same state trained)
    # which lm-evaluation-harness tasks the evals run, and how: nothing trained changes
    "eval.tasks", "eval.tasks_every", "eval.tasks_limit", "eval.tasks_batch_size", "eval.task_dir",
    "mesh.*",                       # the same state restored onto another mesh (tested)
    "model.attention", "model.remat",   # the same math: another kernel, recomputation
    "sample.*",                     # what the text / image samples show; no metric
    "init_from.*",                  # ignored on resume: the run's own checkpoint wins
    "trackers.*",                   # where metrics are also written, not what is trained
    "data.sources",                 # a shards mixture's folders and weights: batches from the
                                    # resume step on draw with the new ones (logged, provenance)
)


#: safe changes only while no best checkpoint is kept: a kept one was ranked under the old value
BEST_RANKING = ("checkpoint.best_metric", "checkpoint.best_mode", "eval.num_batches",
                "eval.tasks_limit")


class ConfigMismatchError(ConfigError):
    """The resumed run's config differs from the saved one in a field that changes training."""


def is_safe_change(field: str) -> bool:
    return any(field == s or (s.endswith(".*") and field.startswith(s[:-1])) for s in SAFE_CHANGES)


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; tuples as lists (as JSON holds them)."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def same_value(old, new) -> bool:
    if old == new:
        return True
    # A run started before paths were stored absolute holds the path as it was given.
    return (isinstance(old, str) and isinstance(new, str) and bool(old) and
            not os.path.isabs(old) and os.path.abspath(old) == new)


def config_changes(saved: dict, config) -> dict[str, tuple]:
    """{field: (saved value, new value)} for every field that differs; a field only one side has
    is left out (a field added to or removed from pretrainx since the run started)."""
    old = flatten(saved)
    new = flatten(json.loads(config.to_json()))
    return {k: (old[k], new[k]) for k in sorted(old.keys() & new.keys())
            if not same_value(old[k], new[k])}


def read_config(workdir: str) -> dict | None:
    """The saved config as a dict; None when there is none; one line when it is unreadable."""
    file = path(workdir, CONFIG)
    if not os.path.exists(file):
        return None
    try:
        with open(file, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:     # JSONDecodeError, UnicodeDecodeError: a cut or garbled file
        raise ConfigError(f"{file} is unreadable ({str(e).splitlines()[0][:120]}): restore it "
                          f"(a train resume may also move it away to go on unchecked)") from None


def load_config(workdir: str):
    """The resolved config a run wrote, as a ConfigDict, for ``sample`` / ``eval`` on that run."""
    saved = read_config(workdir)     # a cut or garbled file: one line, not a traceback
    if saved is None:
        raise FileNotFoundError(f"no {CONFIG} in workdir {workdir!r}: is it a pretrainx run?")
    return config_defaults.with_defaults(saved)    # a run older than a field reads its default


def kept_checkpoint_steps(directory: str) -> list[str]:
    return [s for s in os.listdir(directory) if s.isdigit()] if os.path.isdir(directory) else []


def check_resume(workdir: str, config) -> dict[str, tuple]:
    """The safe changes from the saved config (to record); ConfigMismatchError for any other."""
    saved = read_config(workdir)
    if saved is None:
        log.warning("%s has checkpoints but no %s: the config cannot be checked", workdir, CONFIG)
        return {}
    changes = config_changes(saved, config)
    best_kept = kept_checkpoint_steps(path(workdir, CHECKPOINTS_BEST))
    unsafe = {k: v for k, v in changes.items()
              if not is_safe_change(k) or (k in BEST_RANKING and best_kept)}
    if unsafe:
        shown = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in list(unsafe.items())[:4])
        more = f" (and {len(unsafe) - 4} more)" if len(unsafe) > 4 else ""
        raise ConfigMismatchError(
            f"{workdir} holds a run trained with another config ({shown}{more}); nothing was "
            f"changed. Resume with the saved config, or start a new workdir with "
            f"--config.init_from.workdir={workdir}")
    for k, (old, new) in changes.items():
        log.info("resume changes %s: %r -> %r", k, old, new)
    return changes


def write_config(config, workdir: str) -> None:
    if jax.process_index() == 0:
        file = path(workdir, CONFIG)
        with open(file + ".tmp", "w") as f:
            f.write(config.to_json(indent=2))
        os.replace(file + ".tmp", file)


# --- metrics.jsonl -----------------------------------------------------------------------------

def open_metrics(workdir: str):
    """``metrics.jsonl`` opened for appending, line-buffered (a kill loses at most one line)."""
    os.makedirs(workdir, exist_ok=True)
    return open(path(workdir, METRICS), "a", buffering=1)


def metrics_line(step: int, scalars: dict) -> str:
    """One row of ``metrics.jsonl``: the step, then the scalars as floats."""
    return json.dumps({"step": int(step), **{k: float(v) for k, v in scalars.items()}}) + "\n"


def has_metrics(workdir: str) -> bool:
    return os.path.exists(path(workdir, METRICS))


def _parsed(line: str):
    try:
        row = json.loads(line)
    except json.JSONDecodeError:   # a line cut short by a kill
        return None
    return row if isinstance(row, dict) else None


def read_rows(workdir: str) -> list[dict]:
    """Every whole row of the run's ``metrics.jsonl``, in the order written."""
    file = path(workdir, METRICS)
    if not os.path.exists(file):
        raise FileNotFoundError(f"no {METRICS} in {workdir!r}: is it a pretrainx run?")
    with open(file) as f:
        return [row for line in f if line.strip() and (row := _parsed(line)) is not None]


def curve(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of ``key``, sorted by step, one value per step (the last logged)."""
    by_step = {int(r["step"]): float(r[key]) for r in rows if key in r and "step" in r}
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def metric_keys(rows: list[dict]) -> set[str]:
    return {k for r in rows for k in r if k != "step"}


def summarize(workdir: str, key: str, mode: str = "min") -> dict | None:
    """Best and final value of ``key`` in a run: {"best", "best_step", "final", "final_step",
    "evals"}; None when the run never logged it. Non-finite values never count as best."""
    steps, vals = curve(read_rows(workdir), key)
    if not steps:
        return None
    finite = [(v, s) for s, v in zip(steps, vals) if math.isfinite(v)]
    pick = min if mode == "min" else max
    best, best_step = pick(finite, key=lambda vs: vs[0]) if finite else (math.nan, None)
    return {"best": best, "best_step": best_step, "final": vals[-1], "final_step": steps[-1],
            "evals": len(steps)}


def trim_metrics(workdir: str, last_step: int) -> int:
    """Drop the rows of ``metrics.jsonl`` past ``last_step`` (the restored step; 0 for a fresh
    start) and any line a kill cut short; returns how many rows were dropped. Process 0 only."""
    file = path(workdir, METRICS)
    if jax.process_index() != 0 or not os.path.exists(file):
        return 0
    kept, dropped = [], 0
    with open(file) as f:
        for line in f:
            row = _parsed(line)
            if row is not None and int(row.get("step", 0)) <= last_step:
                kept.append(line if line.endswith("\n") else line + "\n")
            elif line.strip():
                dropped += 1
    if dropped:
        with open(file + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(file + ".tmp", file)
        log.info("%s: dropped %d rows past step %d (logged before the restart)", METRICS,
                 dropped, last_step)
    return dropped
