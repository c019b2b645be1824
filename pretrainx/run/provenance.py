"""``provenance.json`` beside ``config.json``: what a run ran on, for the reproduction registry and
for resume checks.

Fields: ``git_commit`` (of the checkout that holds this package; None outside git),
``git_dirty`` (uncommitted changes to tracked files), ``packages`` (versions of the libraries a
result depends on), ``python``, ``platform``, ``device_kind``, ``device_count``,
``local_device_count``, ``process_count``, ``hostname``, ``argv``, ``started_at`` (UTC, ISO 8601),
``resumed_from_step`` (None for a fresh start) and, on a resume that changed safe config fields,
``config_changes`` ({field: [old, new]}). The first start writes them at the top level;
every later start of the same workdir (a resume) is appended to ``resumes``.
"""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import logging
import os
import platform
import socket
import subprocess
import sys

import jax

from pretrainx.run import rundir

FILENAME = rundir.PROVENANCE
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "ml-collections", "numpy",
            "tokenizers", "tensorflow-datasets", "grain", "pretrainx")


def _git(*args: str) -> str | None:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect(resumed_from_step: int | None = None) -> dict:
    """This process's provenance (no file is touched)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    device = jax.devices()[0]
    return {
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "packages": {name: _version(name) for name in PACKAGES},
        "python": platform.python_version(),
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "process_count": jax.process_count(),
        "hostname": socket.gethostname(),
        "argv": list(sys.argv),
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "resumed_from_step": resumed_from_step,
    }


def read(workdir: str) -> dict | None:
    path = os.path.join(workdir, FILENAME)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write(workdir: str, resumed_from_step: int | None = None,
          config_changes: dict | None = None) -> dict:
    """Record this start of the run in ``workdir/provenance.json`` (process 0 writes);
    ``config_changes``: {field: (old, new)} a resume made to the saved config (safe ones)."""
    entry = collect(resumed_from_step)
    if config_changes:
        entry["config_changes"] = {k: list(v) for k, v in config_changes.items()}
    path = os.path.join(workdir, FILENAME)
    try:
        record = read(workdir)
    except ValueError as e:     # garbled by hand or a broken disk: a record must not stop the run
        record = None
        if jax.process_index() == 0:
            os.replace(path, path + ".unreadable")
        logging.getLogger(__name__).warning(
            "%s is unreadable (%s): kept as %s.unreadable, a new record starts", path,
            str(e).splitlines()[0][:120], FILENAME)
    if record is None or resumed_from_step is None:
        record = {**entry, "resumes": []}
    else:
        record.setdefault("resumes", []).append(entry)
    if jax.process_index() == 0:
        with open(path + ".tmp", "w") as f:
            json.dump(record, f, indent=2)
        os.replace(path + ".tmp", path)
    return record
