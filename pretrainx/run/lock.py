"""One writer per workdir: ``workdir/run.lock``, held while a run trains.

Two runs in one workdir would both train, log every row twice and delete each other's
checkpoints. The lock is an ``fcntl.flock`` on ``run.lock``: the kernel releases it when the
holder exits however it exits (kill -9 included), so a crashed run never leaves a lock that
blocks its rerun. The file records the holder's pid, host and start time: a second writer is
refused with them, and a rerun after a crash says whose stale lock it took over. Only process 0
of a multi-process run takes it; the others learn the outcome from it.
"""
from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
import socket

import jax

from pretrainx.config.check import ConfigError
from pretrainx.run import rundir

log = logging.getLogger(__name__)

FILENAME = rundir.LOCK


class WorkdirError(ConfigError):
    """The workdir cannot hold a run: not a directory, not writable, or in use by another run."""


def prepare(workdir: str) -> str:
    """Create ``workdir`` (and parents); a one-line WorkdirError when it cannot hold a run."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise WorkdirError(f"workdir {workdir!r} exists and is not a directory")
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as e:
        raise WorkdirError(f"cannot create workdir {workdir!r}: {e.strerror or e}") from None
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise WorkdirError(f"workdir {workdir!r} is not writable")
    return workdir


def _holder(path: str) -> dict:
    try:
        with open(path) as f:
            return json.loads(f.read() or "{}")
    except (OSError, ValueError):
        return {}


def holder_if_held(workdir: str) -> dict | None:
    """The holder ({pid, host, since}) of ``workdir``'s lock while a live run holds it; None
    when no run trains there. Reads only: another run's workdir (``init_from``) is never written."""
    path = os.path.join(workdir, FILENAME)
    try:
        with open(path) as f:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)   # released when the file closes
            return None
    except BlockingIOError:
        return _holder(path) or {"pid": "?"}
    except OSError:             # no lock file (an imported run, or one from before locks)
        return None


class WorkdirLock:
    """``with WorkdirLock(workdir):`` -- raises WorkdirError when another live run holds it."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, FILENAME)
        self._file = None

    def acquire(self) -> None:
        error = self._acquire_here() if jax.process_index() == 0 else ""
        if jax.process_count() > 1:   # every process stops when process 0 could not lock
            from jax.experimental import multihost_utils
            refused = multihost_utils.broadcast_one_to_all(int(bool(error)))
            if int(refused) and not error:
                error = f"process 0 could not lock the workdir ({self.path})"
        if error:
            raise WorkdirError(error)

    def _acquire_here(self) -> str:
        try:
            f = open(self.path, "a+")
        except OSError as e:
            return f"cannot write {self.path}: {e.strerror or e}"
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            h = _holder(self.path)
            return (f"workdir {os.path.dirname(self.path)!r} is in use by another run (pid "
                    f"{h.get('pid', '?')} on {h.get('host', '?')}, since {h.get('since', '?')}); "
                    f"stop it or pick another workdir")
        previous = _holder(self.path)
        if previous.get("pid"):
            log.info("took over the stale lock of pid %s on %s (that run ended without "
                     "releasing it)", previous.get("pid"), previous.get("host"))
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "since": datetime.datetime.now().isoformat(timespec="seconds")}))
        f.flush()
        self._file = f
        return ""

    def release(self) -> None:
        if self._file is None:
            return
        try:
            self._file.seek(0)
            self._file.truncate()         # an empty file: nobody holds it
            fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._file.close()
            self._file = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
