"""Cache files the evaluators share between runs and processes (FID statistics, the feature
classifier): written by one process, renamed into place whole."""
from __future__ import annotations

import os
import socket


def atomic_write(path: str, write) -> None:
    """``write(tmp_path)`` then one rename onto ``path``: a reader sees the whole file or none.
    The temporary name is this process's own, so concurrent writers never share one."""
    tmp = f"{path}.tmp-{socket.gethostname()}-{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def computed_once(path: str, compute, save, load):
    """A cache file with one writer: process 0 computes and writes ``path`` when it is missing,
    the other processes wait for it and read it (one barrier, in multi-process runs only)."""
    import jax
    value = None
    if jax.process_index() == 0 and not os.path.exists(path):
        value = compute()
        atomic_write(path, lambda tmp: save(tmp, value))
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(f"pretrainx_cache_{os.path.basename(path)}")
    return value if value is not None else load(path)
