"""The runner: exact resume, sharding equivalence, NaN stop, corrupt-checkpoint fallback."""
import json
import os

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from pretrainx.config import load as config_lib

from pretrainx.core import optim

from pretrainx.core import train

ROOT = os.path.join(os.path.dirname(__file__), "..")


def tiny_config(**updates):
    """A 2-layer GPT on 200 kB of the standard library's source (real text, always present)."""
    c = config_lib.load(os.path.join(ROOT, "configs/gpt/shakespeare_char.py:smoke"))
    base = {
        "data.path": "stdlib", "data.max_bytes": 200_000, "data.tokenizer": "byte",
        "model.vocab_size": 256, "model.num_layers": 2, "model.num_heads": 4, "model.embed_dim": 32,
        "model.max_len": 32, "data.seq_len": 32, "batch_size": 16, "eval.batch_size": 16,
        "train.steps": 6, "train.log_every": 1, "train.progress": False, "eval.every": 0,
        "checkpoint.every": 100, "optimizer.warmup_steps": 2, "optimizer.decay_steps": 6,
    }
    base.update(updates)
    return config_lib.override(c, base)


def losses(history):
    return {h["step"]: h["train/loss"] for h in history if "train/loss" in h}


@pytest.mark.slow
def test_learning_rate_is_logged_every_step(tmp_path):
    # log_every=3: steps 3 and 6 write the LR with their train metrics, the others on its own
    # line; both must be the warm-up + cosine curve at the step that was taken.
    cfg = tiny_config(**{"train.log_every": 3, "optimizer.warmup_steps": 2})
    train.run(cfg, str(tmp_path))
    with open(tmp_path / "metrics.jsonl") as f:
        lr = {r["step"]: r["train/lr"] for r in map(json.loads, f) if "train/lr" in r}
    schedule = optim.learning_rate_schedule(cfg.optimizer)
    assert sorted(lr) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([lr[s] for s in range(1, 7)],
                               [float(schedule(s - 1)) for s in range(1, 7)], rtol=1e-6)
    # nanoGPT's warm-up, lr (s + 1) / (warmup + 1): the first step already moves the weights
    assert lr[1] == pytest.approx(cfg.optimizer.lr / 3) and lr[3] == pytest.approx(cfg.optimizer.lr)
    assert lr[6] < lr[4]


@pytest.mark.slow
def test_resume_after_crash_replays_the_same_losses(tmp_path):
    cfg = tiny_config(**{"checkpoint.every": 2, "model.dropout": 0.1})
    full = losses(train.run(cfg, str(tmp_path / "full")).history)
    crashed = tmp_path / "crashed"
    first = train.run(cfg, str(crashed), stop_after=5)    # saves at 2 and 4, dies after step 5
    assert first.stopped_early and sorted(os.listdir(crashed / "checkpoints")) == ["2", "4"]
    resumed = train.run(cfg, str(crashed))                 # resumes from step 4
    after = losses(resumed.history)
    assert sorted(after) == [5, 6]
    for step in (5, 6):
        assert after[step] == full[step], (step, after[step], full[step])
    assert int(resumed.state.step) == 6
    # metrics.jsonl reads as one run: step 5, logged before the crash, is not there twice
    assert metric_rows(crashed) == metric_rows(tmp_path / "full")


TIMING = ("train/steps_per_sec", "train/tokens_per_sec", "train/mfu", "time/")


def metric_rows(workdir):
    """metrics.jsonl's rows without the timing fields, in file order."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if not k.startswith(TIMING)}
                for line in f]


MESHES = {
    "one_device": dict(data=1, fsdp=1, tensor=1),
    "data_parallel": dict(data=8, fsdp=1, tensor=1),
    "fsdp": dict(data=2, fsdp=4, tensor=1),
    "tensor_parallel": dict(data=4, fsdp=1, tensor=2),
    "fsdp_and_tensor": dict(data=2, fsdp=2, tensor=2),
}


class MeshRuns(dict):
    """The 3-step tiny run on each mesh of MESHES, trained when a test first asks for it (the
    fast test reads two meshes; the slow one compares all five)."""

    def __init__(self, tmp_path_factory):
        super().__init__()
        self.tmp_path_factory = tmp_path_factory

    def __missing__(self, name):
        cfg = tiny_config(**{f"mesh.{k}": v for k, v in MESHES[name].items()}, **{"train.steps": 3})
        self[name] = train.run(cfg, str(self.tmp_path_factory.mktemp(name)))
        return self[name]


@pytest.fixture(scope="module")
def mesh_runs(tmp_path_factory):
    return MeshRuns(tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("name", [m for m in MESHES if m != "one_device"])
def test_sharded_losses_equal_one_device(mesh_runs, name):
    ref, got = losses(mesh_runs["one_device"].history), losses(mesh_runs[name].history)
    assert sorted(got) == [1, 2, 3]
    np.testing.assert_allclose([got[s] for s in got], [ref[s] for s in got], rtol=2e-5)


def test_parameters_are_sharded_as_the_rules_say(mesh_runs):
    params = mesh_runs["fsdp_and_tensor"].state.params
    kernels = [(path, leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(params)
               if leaf.ndim == 2 and "mlp" in jax.tree_util.keystr(path).lower()]
    assert kernels, "no MLP kernels found"
    for path, leaf in kernels:
        spec = leaf.sharding.spec
        # rules: embed -> fsdp, mlp -> tensor; MLP in is (embed, mlp), MLP out is (mlp, embed)
        assert spec in (P("fsdp", "tensor"), P("tensor", "fsdp")), (jax.tree_util.keystr(path), spec)
        shard = leaf.addressable_shards[0].data.shape
        assert shard == (leaf.shape[0] // 2, leaf.shape[1] // 2)
    # Adam's moments are sharded like their parameters.
    mu = mesh_runs["fsdp_and_tensor"].state.opt_state[1][0].mu
    assert jax.tree.map(lambda x: x.sharding.spec, mu) == jax.tree.map(lambda x: x.sharding.spec, params)
    # data parallel replicates the parameters
    dp = mesh_runs["data_parallel"].state.params
    assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(dp))


@pytest.mark.slow
def test_gradient_accumulation_matches_the_full_batch(tmp_path):
    one = losses(train.run(tiny_config(**{"train.steps": 3}), str(tmp_path / "a")).history)
    acc = losses(train.run(tiny_config(**{"train.steps": 3, "optimizer.grad_accum": 2,
                                          "mesh.data": 1}), str(tmp_path / "b")).history)
    np.testing.assert_allclose([acc[s] for s in (1, 2, 3)], [one[s] for s in (1, 2, 3)], rtol=1e-4)


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny_config(**{"optimizer.lr": 1e30, "optimizer.schedule": "constant",
                         "optimizer.warmup_steps": 0, "optimizer.clip_norm": 0.0,
                         "checkpoint.every": 1, "checkpoint.async_save": False})
    with pytest.raises(train.NonFiniteLossError, match=r"at step \d+; stopped without saving"):
        train.run(cfg, str(tmp_path))
    saved = sorted(int(s) for s in os.listdir(tmp_path / "checkpoints"))
    logged = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    finite = [r["step"] for r in logged if np.isfinite(r.get("train/loss", 0.0))]
    assert saved and max(saved) <= max(finite), (saved, finite)


@pytest.mark.slow
def test_nan_loss_at_an_unlogged_eval_step_keeps_the_best_checkpoint_clean(tmp_path):
    # Evals (which save the best checkpoint) on every step; losses logged only every 100 steps.
    cfg = tiny_config(**{"optimizer.lr": 1e30, "optimizer.schedule": "constant",
                         "optimizer.warmup_steps": 0, "optimizer.clip_norm": 0.0,
                         "train.log_every": 100, "eval.every": 1, "eval.num_batches": 1,
                         "checkpoint.every": 100, "checkpoint.async_save": False})
    with pytest.raises(train.NonFiniteLossError):
        train.run(cfg, str(tmp_path))
    best = tmp_path / "checkpoints_best"
    for step in (os.listdir(best) if best.exists() else []):
        meta = json.load(open(best / step / "meta" / "metadata"))
        assert np.isfinite(meta["metrics"].get("val/loss", 0.0)), (step, meta)


@pytest.mark.slow
def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    cfg = tiny_config(**{"train.steps": 4, "checkpoint.every": 2, "checkpoint.keep": 3})
    train.run(cfg, str(tmp_path))
    state_dir = tmp_path / "checkpoints" / "4" / "state"
    for root, _, files in os.walk(state_dir):
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"garbage")
    from pretrainx import objectives
    from pretrainx.core import checkpoint, optim, sharding, state as state_lib
    objective = objectives.get(cfg.objective)(cfg)
    mesh = sharding.make_mesh(cfg.mesh)
    target = state_lib.abstract_train_state(
        objective, lambda p: optim.make_optimizer(cfg.optimizer, p)[0], ema=False, mesh=mesh,
        axis_rules=sharding.rules(cfg.sharding))
    ckpt = checkpoint.Checkpointer(str(tmp_path), cfg.checkpoint)
    state, data_state, step = ckpt.restore(target)
    ckpt.close()
    assert step == 2 and int(state.step) == 2 and data_state.next_index == 2
    # kept for inspection, out of the way of the step the run saves again (issue 9)
    assert not os.path.exists(state_dir)
    assert os.path.isdir(tmp_path / "checkpoints" / "corrupt-4" / "state")
    assert "unreadable" in caplog.text
