"""The diffusion step sharded over 8 CPU devices (data parallel x FSDP) gives the losses of one
device for the same global batch. (Flow matching shares the UNet, the runner and the sharding
rules; its own math is tested in test_flow.py.) So do the few-step objectives, whose losses call
the network several times (shortcut's self-consistency target) or through a JVP (MeanFlow)."""
import pytest
import os

import jax
import numpy as np
import pytest

from pretrainx import objectives

from pretrainx.config import load as config_lib

from pretrainx.core import train

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
MESHES = {"one_device": dict(data=1, fsdp=1), "data_and_fsdp": dict(data=2, fsdp=4)}


@pytest.mark.slow
def test_sharded_diffusion_losses_equal_one_device(tmp_path):
    c = config_lib.load(os.path.join(ROOT, "configs/diffusion/digits_smoke.py:smoke"))
    losses = {}
    for name, mesh in MESHES.items():
        run = config_lib.override(c, {"train.steps": 2, "train.log_every": 1, "train.progress": False,
                                      "eval.every": 0, "checkpoint.every": 2, "batch_size": 16,
                                      "mesh.data": mesh["data"], "mesh.fsdp": mesh["fsdp"]})
        result = train.run(run, str(tmp_path / name))
        losses[name] = [h["train/loss"] for h in result.history if "train/loss" in h]
        if name == "data_and_fsdp":   # the parameters really are split over the fsdp axis
            sharded = [x for x in jax.tree.leaves(result.state.params)
                       if "fsdp" in str(x.sharding.spec)]
            assert sharded and all(not x.sharding.is_fully_replicated for x in sharded)
            check_sharded_generation(run, result.state.params)
    assert len(losses["one_device"]) == 2
    np.testing.assert_allclose(losses["data_and_fsdp"], losses["one_device"], rtol=2e-5)


@pytest.mark.slow    # two runner runs with compiles on 1 and 8 devices: ~2 CPU-minutes each
@pytest.mark.parametrize("config,sampler", [("digits_shortcut.py:smoke", "shortcut"),
                                            ("digits_meanflow.py:smoke", "meanflow")])
def test_sharded_few_step_losses_equal_one_device(config, sampler, tmp_path):
    c = config_lib.load(os.path.join(ROOT, "configs/diffusion", config))
    losses = {}
    for name, mesh in MESHES.items():
        run = config_lib.override(c, {"train.steps": 2, "train.log_every": 1, "train.progress": False,
                                      "eval.every": 0, "checkpoint.every": 2, "batch_size": 16,
                                      "mesh.data": mesh["data"], "mesh.fsdp": mesh["fsdp"]})
        result = train.run(run, str(tmp_path / name))
        losses[name] = [h["train/loss"] for h in result.history if "train/loss" in h]
    assert len(losses["one_device"]) == 2
    np.testing.assert_allclose(losses["data_and_fsdp"], losses["one_device"], rtol=2e-5)
    check_sharded_generation(run, result.state.params, sampler=sampler, steps=1, check_hlo=False)


def check_sharded_generation(config, mesh_params, sampler="ddim", steps=3, check_hlo=True):
    """Sampling with params on the 2x4 mesh splits the rows over the 8 devices and makes the
    same images as sampling with host copies of the params on one device."""
    objective = objectives.get(config.objective)(config)
    key = jax.random.key(3)
    sharded = objective.sample_images(mesh_params, key, 16, sampler=sampler, steps=steps, batch_size=16)
    single = objective.sample_images(jax.device_get(mesh_params), key, 16, sampler=sampler, steps=steps,
                                batch_size=16)
    assert sharded.shape == (16, 8, 8, 1) and np.abs(single).max() > 0.1
    np.testing.assert_allclose(sharded, single, atol=2e-4)
    if not check_hlo:
        return
    (fn,) = [f for k, f in objective._sampler_fns.items() if k[-1] is not None]
    mesh = jax.tree.leaves(mesh_params)[0].sharding.mesh
    hlo = fn.lower(mesh_params, np.zeros(2, np.uint32), np.zeros(16, np.int32)).compile().as_text()
    # After SPMD partitioning each device's program works on its 16 / 8 = 2 rows.
    assert "f32[2,8,8,1]" in hlo, "the noise rows are not split over the 8 devices"
    assert mesh.shape["data"] * mesh.shape["fsdp"] == 8
