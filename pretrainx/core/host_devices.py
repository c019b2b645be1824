"""How many XLA devices a CPU host shows, and the persistent compilation cache: two process-wide
settings the first ``train.setup`` of a process makes, before JAX starts its backends; and how
the loop feeds CPU devices (one step queued behind the running one, several steps a dispatch).

Why several devices on one CPU: XLA:CPU runs one device's program as a serial stream of small
kernels, so a small model's step barely uses a second core (experiments/throughput.md, "CPU").
With ``jax_num_cpu_devices`` = N the CPU client shows N devices, each with its
own stream, and the default mesh (``data=-1``) splits the batch over them: data parallelism over
the host's cores, the same program a GPU host runs. ``mesh.host_devices`` = 0 (the default) asks
for as many devices as this process may use cores, at most ``AUTO_MAX`` (the count the test suite
runs every config on) and only a count that divides the batch (and its micro-batches and the
eval batch); 1 keeps one device; N > 1 asks for N. It changes nothing where ``XLA_FLAGS``,
``JAX_NUM_CPU_DEVICES`` or the caller already set a count, where JAX's backends are already up
(a second run in one process: the first one chose), in a multi-process run, or for GPU and TPU
devices: the setting only shapes the CPU client.

Nothing here imports jax at module level; ``train.setup`` calls ``request`` first thing, before
any backend exists in a fresh process. The count is the process's own (a JAX setting, not an
environment variable), so child processes choose theirs.
"""
from __future__ import annotations

import logging
import math
import os

log = logging.getLogger(__name__)

FLAG = "--xla_force_host_platform_device_count"
AUTO_MAX = 8


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:            # not on Linux
        return os.cpu_count() or 1


def auto_count(config, cores: int) -> int:
    """The most devices, at most ``cores`` and ``AUTO_MAX``, that the default mesh can split
    every batch of ``config`` over; 1 for a mesh laid out by hand (its devices are the user's)."""
    mesh = config.mesh
    if (int(mesh.data), int(mesh.fsdp), int(mesh.tensor)) != (-1, 1, 1):
        return 1
    accum = max(1, int(config.optimizer.grad_accum))
    rows = math.gcd(int(config.batch_size) // accum, int(config.eval.batch_size))
    return max(d for d in range(1, max(1, min(cores, AUTO_MAX)) + 1) if rows % d == 0)


def request(config) -> int | None:
    """Ask for ``config``'s host device count (``jax_num_cpu_devices``, module docstring); the
    count asked for, or None where nothing could or needed to change."""
    import jax
    wanted = int(config.mesh.host_devices)
    if (FLAG in os.environ.get("XLA_FLAGS", "") or jax.config.jax_num_cpu_devices != -1
            or _backends_started()):
        return None
    count = auto_count(config, usable_cores()) if wanted == 0 else wanted
    if count <= 1:
        return None
    jax.config.update("jax_num_cpu_devices", count)
    log.info("%d CPU devices (mesh.host_devices=%d, %d cores): the batch is split over them "
             "where the backend is the CPU", count, wanted, usable_cores())
    return count


def _backends_started() -> bool:
    import jax
    from jax._src import xla_bridge
    return xla_bridge.backends_are_initialized() or jax.distributed.is_initialized()


def enable_compile_cache(path: str, max_bytes: int = 2 << 30) -> None:
    """JAX's persistent compilation cache in ``path`` ("" leaves it off): a rerun of the same
    program loads its executable instead of compiling it again (the train step, the model's
    init, decoding: ~7 s of a CPU run's start-up). An environment's JAX_COMPILATION_CACHE_DIR
    wins; the folder is trimmed to ``max_bytes``, least recently used first."""
    import jax
    if not path or jax.config.jax_compilation_cache_dir:
        return
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))
    jax.config.update("jax_compilation_cache_max_size", max_bytes)


def bounded_queue(mesh) -> bool:
    """True where at most one step may wait behind the running one: several CPU devices. XLA:CPU's
    collectives rendezvous on a shared thread pool, and a deep queue of dispatched steps has been
    seen to starve a rendezvous until XLA aborts the process (``pretrainx bench``, 2 host devices,
    300 steps dispatched without a wait: "Termination timeout ... of 40 seconds exceeded")."""
    return mesh.size > 1 and _on_cpu(mesh)


def _on_cpu(mesh) -> bool:
    return mesh.devices.flat[0].platform == "cpu"


class StepQueue:
    """The steps dispatched on ``mesh``, kept at most one behind the running one where
    ``bounded_queue(mesh)``: ``dispatched(outputs)`` after each dispatch waits for the step
    before it (the train loop's and ``bench``'s one way of bounding their queue)."""

    def __init__(self, mesh):
        self.bounded, self.previous = bounded_queue(mesh), None

    def dispatched(self, outputs) -> None:
        if self.bounded:
            import jax
            jax.block_until_ready(self.previous)
            self.previous = outputs


def steps_per_dispatch(config, mesh) -> int:
    """``train.steps_per_dispatch``, its 0 resolved: on one process's CPU devices the steps
    between two logged steps (at most 16) go in one dispatch, as the host's per-step work (the
    batch put on the devices, the learning-rate row, the dispatch) would otherwise take a core
    from the devices' threads; elsewhere one step per dispatch."""
    k = int(config.train.steps_per_dispatch)
    if k:
        return k
    import jax
    return min(int(config.train.log_every), 16) if _on_cpu(mesh) and jax.process_count() == 1 else 1
