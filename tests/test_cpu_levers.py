"""CPU speed levers stay correct (issue 26): the data-parallel mesh over 2 host devices
(XLA_FLAGS=--xla_force_host_platform_device_count=2 with mesh.data=2, documented in
experiments/throughput.md) trains the CPU baby GPT to the same losses as one device."""
import os

import numpy as np
import pytest

from pretrainx.tools import bench

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
SPEC = os.path.join(ROOT, "configs/gpt/shakespeare_char.py:cpu")


def losses(data_devices: int, *extra: str, steps: int = 6) -> list[float]:
    prep = bench.prepare(SPEC, [f"mesh.data={data_devices}", "model.num_layers=2", *extra],
                         num_batches=steps)
    state, out = prep.setup.state, []
    for batch in prep.batches:
        state, metrics = prep.setup.step_fn(state, batch)
        out.append(float(metrics["loss"]))
    return out


@pytest.mark.slow          # the runner's setup and 6 training steps, twice per case
@pytest.mark.parametrize("extra", [(), ("optimizer.name=muon",)], ids=["adamw", "muon"])
def test_two_device_data_parallel_mesh_gives_one_devices_losses(extra):
    one, two = losses(1, *extra), losses(2, *extra)
    assert one[-1] < one[0]                            # it trains
    # the same batches and initial state; only the batch's reduction order differs
    np.testing.assert_allclose(two, one, rtol=2e-5)
