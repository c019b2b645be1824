"""Checkpoints written before the train state had ``aux`` (runner contract v2) still restore into
a run whose objective keeps no auxiliary state; with a non-empty aux they stay unreadable."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from pretrainx.core import checkpoint
from pretrainx.core.state import TrainState


def test_a_checkpoint_from_before_aux_restores_with_an_empty_aux(tmp_path):
    state = TrainState(step=jnp.int32(7), params={"w": jnp.arange(3.0)},
                       opt_state={"mu": jnp.full(3, 0.5)}, rng=jax.random.PRNGKey(1),
                       ema_params={"w": jnp.ones(3)}, frozen={}, aux={})
    old = {f.name: getattr(state, f.name) for f in dataclasses.fields(state) if f.name != "aux"}
    manager = checkpoint._manager(str(tmp_path / "checkpoints"), ocp.CheckpointManagerOptions())
    manager.save(7, args=ocp.args.Composite(state=ocp.args.StandardSave(old),
                                            meta=ocp.args.JsonSave({})))
    manager.wait_until_finished()
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one), state)
    restored, _, step = checkpoint.restore_newest(manager, target)
    assert step == 7 and restored.aux == {} and int(restored.step) == 7
    np.testing.assert_array_equal(restored.params["w"], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(restored.ema_params["w"], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(restored.opt_state["mu"], [0.5, 0.5, 0.5])
    with_aux = target.replace(aux={"kl": jax.ShapeDtypeStruct((), jnp.float32, sharding=one)})
    with pytest.raises(checkpoint.CheckpointError, match="step 7"):
        checkpoint.restore_newest(manager, with_aux)
    manager.close()


def test_a_replicated_array_on_8_cpu_devices_is_saved_whole_and_restores(tmp_path, monkeypatch):
    """On CPU each replicated array is written from one device: Orbax's replica-parallel save cut
    every array into 8 slices, one JAX op each, which were nearly all of a save's time."""
    from orbax.checkpoint._src.serialization import replica_slices
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:8]), ("data",))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    tree = {f"w{i}": jax.device_put(jnp.arange(16.0) + i, replicated) for i in range(5)}
    slices = []
    cut = replica_slices.jax.lax.slice_in_dim
    monkeypatch.setattr(replica_slices.jax.lax, "slice_in_dim",
                        lambda *a, **k: slices.append(1) or cut(*a, **k))
    manager = checkpoint._manager(str(tmp_path / "checkpoints"), ocp.CheckpointManagerOptions())
    manager.save(1, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                            meta=ocp.args.JsonSave({})))
    manager.wait_until_finished()
    assert slices == []
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), tree)
    restored = manager.restore(1, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                          meta=ocp.args.JsonRestore()))
    for name, x in tree.items():
        np.testing.assert_array_equal(restored.state[name], x)
    manager.close()
