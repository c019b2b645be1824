"""A run's record in its workdir: ``config.json`` checked on resume, ``metrics.jsonl`` read as one run.

Resume. A workdir with a checkpoint is resumed only under the config it was trained with: before
anything in the workdir is rewritten, the new config is compared with the saved ``config.json``
and a difference outside ``SAFE_CHANGES`` stops the run with one line naming the fields (the
saved config and the checkpoints stay as they were). Safe changes are those that do not change
what is trained: how long, how often to log / evaluate / save, the mesh the same state is laid
out on, the attention kernel, what samples show. To change anything else, start a new workdir
with ``init_from.workdir`` pointing at this one.

Metrics. A run killed after its last save has logged steps the resumed run will log again;
``trim_metrics`` drops the rows past the restored step when the run restarts, so that
``metrics.jsonl`` of a killed-and-resumed run equals the uninterrupted run's, row for row (timing
fields aside).
"""
from __future__ import annotations

import json
import logging
import os

import jax

from pretrainx.config.check import ConfigError

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"

#: config fields a resume may change: dotted names, or a section ending in ".*"
SAFE_CHANGES = (
    "train.steps", "train.log_every", "train.progress", "train.preemption_check_every",
    "eval.every",
    "checkpoint.every", "checkpoint.keep", "checkpoint.async_save",   # when and how to save
    # which eval metric picks the best checkpoint: safe only while none is kept (a misspelt
    # metric keeps none; a kept one was ranked by the old metric, which Orbax would look up)
    "checkpoint.best_metric", "checkpoint.best_mode",
    "mesh.*",                       # the same state restored onto another mesh (tested)
    "model.attention", "model.remat",   # the same math: another kernel, recomputation
    "sample.*",                     # what the text / image samples show; no metric
    "init_from.*",                  # ignored on resume: the run's own checkpoint wins
)


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


def _same(old, new) -> bool:
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
    return {k: (old[k], new[k]) for k in sorted(old.keys() & new.keys()) if not _same(old[k], new[k])}


def read_config(workdir: str) -> dict | None:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:     # JSONDecodeError, UnicodeDecodeError: a cut or garbled file
        raise ConfigError(f"{path} is unreadable ({str(e).splitlines()[0][:120]}): restore it "
                          f"(a train resume may also move it away to go on unchecked)") from None


def checkpoint_steps(directory: str) -> list[str]:
    return [s for s in os.listdir(directory) if s.isdigit()] if os.path.isdir(directory) else []


def check_resume(workdir: str, config) -> dict[str, tuple]:
    """The safe changes from the saved config (to record); ConfigMismatchError for any other."""
    saved = read_config(workdir)
    if saved is None:
        log.warning("%s has checkpoints but no %s: the config cannot be checked", workdir,
                    CONFIG_FILE)
        return {}
    changes = config_changes(saved, config)
    best_kept = checkpoint_steps(os.path.join(workdir, "checkpoints_best"))
    unsafe = {k: v for k, v in changes.items()
              if not is_safe_change(k) or (k.startswith("checkpoint.best_") and best_kept)}
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
        path = os.path.join(workdir, CONFIG_FILE)
        with open(path + ".tmp", "w") as f:
            f.write(config.to_json(indent=2))
        os.replace(path + ".tmp", path)


def trim_metrics(workdir: str, last_step: int) -> int:
    """Drop the rows of ``metrics.jsonl`` past ``last_step`` (the restored step; 0 for a fresh
    start) and any line a kill cut short; returns how many rows were dropped. Process 0 only."""
    path = os.path.join(workdir, METRICS_FILE)
    if jax.process_index() != 0 or not os.path.exists(path):
        return 0
    kept, dropped = [], 0
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict) and int(row.get("step", 0)) <= last_step:
                kept.append(line if line.endswith("\n") else line + "\n")
            elif line.strip():
                dropped += 1
    if dropped:
        with open(path + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(path + ".tmp", path)
        log.info("metrics.jsonl: dropped %d rows past step %d (logged before the restart)",
                 dropped, last_step)
    return dropped
