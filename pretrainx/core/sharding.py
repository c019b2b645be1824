"""The device mesh and the one place where logical axis names become mesh shardings.

Parameters carry logical names (``nn.with_logical_partitioning`` in the models); the config's
``sharding.rules`` map those names to the mesh axes (data, fsdp, tensor). Batches are split along
their first axis over ("data", "fsdp"): FSDP shards the batch like data parallelism and, in
addition, the parameters and optimiser state.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from pretrainx.errors import UserError

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")


def mesh_shape(mesh_config, num_devices: int) -> tuple[int, int, int]:
    """Sizes of (data, fsdp, tensor); one axis may be -1: whatever devices the others leave."""
    sizes = [int(mesh_config[a]) for a in AXES]
    if sizes.count(-1) > 1:
        raise UserError(f"config.mesh: only one axis may be -1, got {dict(zip(AXES, sizes))}")
    if -1 in sizes:
        known = math.prod(s for s in sizes if s != -1)
        if num_devices % known:
            raise UserError(f"config.mesh {dict(zip(AXES, sizes))} does not divide the "
                            f"{num_devices} devices")
        sizes[sizes.index(-1)] = num_devices // known
    if any(s < 1 for s in sizes) or math.prod(sizes) > num_devices:
        raise UserError(f"config.mesh {dict(zip(AXES, sizes))} needs {math.prod(sizes)} "
                        f"devices; {num_devices} are available")
    return tuple(sizes)


def make_mesh(mesh_config, devices=None) -> Mesh:
    devices = list(jax.devices() if devices is None else devices)
    shape = mesh_shape(mesh_config, len(devices))
    used = devices[:math.prod(shape)]
    return Mesh(np.asarray(used).reshape(shape), AXES)


def rules(sharding_config) -> tuple:
    """The config's rules as the tuple-of-pairs Flax expects (ConfigDicts turn tuples into lists)."""
    out = []
    for logical, mesh_axes in sharding_config.rules:
        if isinstance(mesh_axes, list):
            mesh_axes = tuple(mesh_axes)
        out.append((logical, mesh_axes))
    return tuple(out)


def logical_shardings(abstract_tree, mesh: Mesh, axis_rules):
    """NamedShardings for a tree whose leaves may be ``nn.LogicallyPartitioned`` boxes.

    Unboxed leaves (step counters, optimiser scalars) are replicated.
    """
    specs = nn.get_partition_spec(abstract_tree)
    return nn.logical_to_mesh_sharding(specs, mesh, axis_rules)


def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES, *([None] * (ndim - 1))))


def stacked(sharding: NamedSharding) -> NamedSharding:
    """``sharding`` of one batch leaf, for several batches stacked on a new leading axis
    (``step.steps_per_dispatch``): each batch split the same way."""
    return NamedSharding(sharding.mesh, P(None, *sharding.spec))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_divisor(mesh: Mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]


def put_batch(batch: dict, mesh: Mesh, *, is_stacked: bool = False) -> dict:
    """Host numpy rows of this process -> global arrays split over the batch axes; ``is_stacked``:
    several batches on a leading axis (``step.steps_per_dispatch``), each split the same way.

    In a multi-process run each process holds only its rows; ``make_array_from_process_local_data``
    stitches them into one global array without any host gathering the whole batch.
    """
    def sharding(value):
        one = batch_sharding(mesh, np.ndim(value) - int(is_stacked))
        return stacked(one) if is_stacked else one
    return {k: jax.make_array_from_process_local_data(sharding(v), np.asarray(v))
            for k, v in batch.items()}
