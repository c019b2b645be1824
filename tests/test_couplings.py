"""Reflow couplings: each pair is the flow's ODE solution from its own noise, the files are a pure
function of the seed (whatever the sharding into jobs), a killed job resumes to the same files,
other settings are refused, and the flow objective trains on the pairs' noise (and on t = 1 for
the 1-step distillation). The end-to-end reflow run (generate from a trained run, train with
init_from on the pairs) is the slow test at the bottom."""
import glob
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.config import load as config_lib

from pretrainx.objectives import flow
from pretrainx.tools import couplings

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs", "diffusion")
OPTIONS = dict(num=10, seed=3, sampler="euler", steps=2, chunk_size=4)


@pytest.fixture(scope="module")
def objective_and_params():
    config = config_lib.load(os.path.join(CONFIGS, "digits_smoke.py:flow,smoke"))
    objective = flow.FlowMatching(config)
    params = nn.meta.unbox(jax.jit(objective.init)(jax.random.key(0, impl="unsafe_rbg")))
    rng = np.random.default_rng(0)    # the last conv starts at zero: make the net a real function
    params = jax.tree.map(lambda p: p + 0.05 * rng.standard_normal(p.shape).astype(p.dtype),
                          params)
    return objective, params


@pytest.fixture(scope="module")
def reference(objective_and_params, tmp_path_factory):
    """One uninterrupted single-shard job."""
    out = str(tmp_path_factory.mktemp("couplings"))
    counts = couplings.write_couplings(*objective_and_params, out, **OPTIONS)
    assert counts == {"chunks": 3, "written": 3, "skipped": 0}
    return couplings.load(out)


def test_each_image_is_the_flows_sample_from_its_own_noise(objective_and_params, reference):
    objective, params = objective_and_params
    assert reference["noise"].shape == reference["image"].shape == (10, 8, 8, 1)
    np.testing.assert_array_equal(reference["label"], np.arange(10) % 10)
    rows = [0, 5, 9]     # in the first, second and last (short) chunk
    labels = jnp.asarray(reference["label"][rows])
    by_hand = flow.euler_sample(objective.guided_predictor(params, labels, 1.0),
                                jnp.asarray(reference["noise"][rows]), 2)
    np.testing.assert_allclose(reference["image"][rows], np.clip(by_hand, -1, 1), atol=1e-5)
    # a real Gaussian draw, different in every chunk
    assert abs(float(reference["noise"].std()) - 1.0) < 0.1
    assert not np.allclose(reference["noise"][:2], reference["noise"][4:6])


def test_same_seed_same_files_whatever_the_sharding_and_another_seed_differs(
        objective_and_params, reference, tmp_path):
    sharded = str(tmp_path / "sharded")
    first = couplings.write_couplings(*objective_and_params, sharded, **OPTIONS, shard=1, num_shards=2)
    assert first == {"chunks": 3, "written": 1, "skipped": 0}       # chunk 1 only
    with pytest.raises(ValueError, match="lacks 2 of 3 chunks"):
        couplings.load(sharded)
    couplings.write_couplings(*objective_and_params, sharded, **OPTIONS, shard=0, num_shards=2)
    again = couplings.load(sharded)
    for k in couplings.FIELDS:
        np.testing.assert_array_equal(again[k], reference[k])
    other = str(tmp_path / "other")
    couplings.write_couplings(*objective_and_params, other, **{**OPTIONS, "seed": 4})
    assert not np.allclose(couplings.load(other)["noise"], reference["noise"])


def test_a_killed_job_resumes_to_the_same_files(objective_and_params, reference, tmp_path):
    out = str(tmp_path / "killed")

    def kill_after_two(chunk):
        if chunk == 1:
            raise KeyboardInterrupt("killed")
    with pytest.raises(KeyboardInterrupt):
        couplings.write_couplings(*objective_and_params, out, **OPTIONS, on_chunk=kill_after_two)
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(out, "chunk_*"))) == [
        "chunk_000000.npz", "chunk_000001.npz"]
    # a kill inside np.savez leaves only a temporary file, which is neither read nor counted
    with open(os.path.join(out, "chunk_000002.tmp123.npz"), "wb") as f:
        f.write(b"half a chunk")
    counts = couplings.write_couplings(*objective_and_params, out, **OPTIONS)
    assert counts == {"chunks": 3, "written": 1, "skipped": 2}
    resumed = couplings.load(out)
    for k in couplings.FIELDS:
        np.testing.assert_array_equal(resumed[k], reference[k])


def test_other_settings_in_the_same_folder_are_refused(objective_and_params, tmp_path):
    out = str(tmp_path / "c")
    couplings.write_couplings(*objective_and_params, out, **{**OPTIONS, "num": 4})
    with open(os.path.join(out, couplings.MANIFEST)) as f:
        assert json.load(f)["steps"] == 2
    with pytest.raises(ValueError, match="other settings.*'steps': \\(2, 3\\)"):
        couplings.write_couplings(*objective_and_params, out, **{**OPTIONS, "num": 4, "steps": 3})
    with pytest.raises(ValueError, match="--shard 2"):
        couplings.write_couplings(*objective_and_params, out, **OPTIONS, shard=2, num_shards=2)


def test_the_flow_loss_uses_the_pairs_noise_and_end_time_distils(objective_and_params, reference):
    objective, params = objective_and_params
    batch = {k: jnp.asarray(v[:4]) for k, v in reference.items()}
    rng = jax.random.key(7)
    with_pairs, _ = objective.loss_fn(params, batch, rng, train=False)
    fresh, _ = objective.loss_fn(params, {k: batch[k] for k in ("image", "label")}, rng,
                                 train=False)
    assert float(with_pairs) != pytest.approx(float(fresh))
    # t = 1: the network maps the noise to its sample in one Euler step; the loss is its error
    config = config_lib.override(objective.config, {"flow.time_sampling": "end"})
    distil = flow.FlowMatching(config)
    loss, _ = distil.loss_fn(params, batch, rng, train=False)
    v = distil.apply_model(params, batch["noise"], jnp.ones(4), batch["label"], train=False)
    by_hand = jnp.mean(jnp.square(v - (batch["noise"] - batch["image"])))
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-5)
    one_step = objective.run_sampler(distil.guided_predictor(params, batch["label"], 1.0),
                                     batch["noise"], None, "euler", 1)
    assert float(jnp.mean(jnp.square(one_step - batch["image"]))) == pytest.approx(
        float(by_hand), rel=1e-4)


@pytest.mark.slow     # two short runner runs and a generation, with their compiles: CPU-minutes
def test_reflow_starts_from_the_first_runs_weights_and_trains_on_its_pairs(tmp_path):
    from pretrainx import main
    from pretrainx.core import train
    first, pairs, second = (str(tmp_path / n) for n in ("first", "pairs", "reflow"))
    base = config_lib.override(config_lib.load(os.path.join(CONFIGS, "digits_reflow.py:smoke")),
                               {"train.steps": 10, "eval.every": 10, "checkpoint.every": 10,
                                "eval.fid_num_samples": 0, "eval.grid_samples": 0})
    trained = train.run(base, first).state.ema_params
    assert main.cli(["generate-couplings", "--workdir", first, "--out", pairs, "--num", "64",
                     "--steps", "4", "--chunk-size", "32"]) == 0
    assert couplings.load(pairs)["image"].shape == (64, 8, 8, 1)
    # lr 0: the reflow run's weights stay the first run's EMA, so init_from is seen exactly
    reflow = config_lib.override(base, {"data.couplings": pairs, "init_from.workdir": first,
                                        "train.steps": 2, "optimizer.lr": 0.0,
                                        "optimizer.end_lr": 0.0})
    result = train.run(reflow, second)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(result.state.params),
                 jax.device_get(trained))
    losses = [row["train/loss"] for row in result.history if "train/loss" in row]
    assert losses and all(np.isfinite(losses))
    # the run's training batches are the pairs (noise and sample together), the validation
    # batches the real held-out digits
    objective = flow.FlowMatching(reflow)
    dataset = train.build_dataset(reflow, objective)
    batch, rows = dataset.train.get_batch(0), couplings.load(pairs)
    assert set(batch) == {"image", "noise", "label"}
    match = [np.flatnonzero((rows["noise"] == n).all(axis=(1, 2, 3))) for n in batch["noise"]]
    assert all(len(m) == 1 for m in match)
    np.testing.assert_array_equal(batch["image"], rows["image"][[m[0] for m in match]])
    assert "noise" not in dataset.val.get_batch(0)
