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
