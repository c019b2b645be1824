"""``jax.distributed.initialize`` for ``pretrainx train --distributed``.

With nothing given JAX finds its peers itself (Cloud TPU pods, SLURM, Open MPI, Kubernetes).
Anywhere else, e.g. several processes on one CPU machine, give all three, as flags
(``--coordinator_address=HOST:PORT --num_processes=N --process_id=I``) or as environment
variables (``JAX_COORDINATOR_ADDRESS``, read by JAX itself; ``JAX_NUM_PROCESSES`` and
``JAX_PROCESS_ID``, which JAX does not read, read here). Flags win over the environment.

Cross-process computations on CPU need a CPU collectives implementation. JAX 0.10 defaults to
gloo; where an older JAX has none chosen, gloo is chosen here (an explicit choice is kept).
"""
from __future__ import annotations

import os

import jax

from pretrainx.errors import UserError


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise UserError(f"environment variable {name}={value!r} is not an integer") from None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Must run before anything touches a JAX device (the backends read the distributed client
    when they are created)."""
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    num_processes = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
    if (num_processes is None) != (process_id is None):
        raise UserError("--num_processes and --process_id (or JAX_NUM_PROCESSES and JAX_PROCESS_ID) "
                        "go together: give both or neither")
    if num_processes is not None and not coordinator_address:
        raise UserError("--num_processes/--process_id need --coordinator_address=HOST:PORT "
                        "(or JAX_COORDINATOR_ADDRESS)")
    try:
        if jax.config.jax_cpu_collectives_implementation in (None, "none"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except AttributeError:   # a JAX without the option: nothing to choose
        pass
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
