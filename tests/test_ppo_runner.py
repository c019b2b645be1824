"""PPO through the runner: sharded on 8 CPU devices (data x FSDP x tensor) its rollouts and losses
equal one device's, and a run killed mid-way resumes bit-identically (the rollout rng is a
function of (seed, step); the adaptive KL coefficient is restored from the checkpoint)."""
import jax
import numpy as np
import pytest

from pretrainx.core import train

from test_rlhf_objectives import ppo_config

MESHES = {"one_device": dict(data=1, fsdp=1, tensor=1),
          "eight_devices": dict(data=2, fsdp=2, tensor=2)}
STEPS = 4


def config(mesh, **updates):
    # an adaptive KL coefficient, so the aux state changes each step and must be checkpointed
    return ppo_config(**{"train.steps": STEPS, "ppo.kl_target": 0.5, "ppo.kl_horizon": 100,
                         "checkpoint.every": 2, "mesh.data": mesh["data"],
                         "mesh.fsdp": mesh["fsdp"], "mesh.tensor": mesh["tensor"], **updates})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("ppo")
    out = {name: train.run(config(mesh), str(base / name)) for name, mesh in MESHES.items()}
    cfg = config(MESHES["eight_devices"])
    killed = train.run(cfg, str(base / "killed"), stop_after=3)    # saved at 2, dies after 3
    assert killed.stopped_early
    out["resumed"] = train.run(cfg, str(base / "killed"))
    return out


def series(history, key):
    return {h["step"]: h[f"train/{key}"] for h in history if f"train/{key}" in h}


@pytest.mark.slow
def test_eight_devices_give_the_rollouts_and_losses_of_one(runs):
    one, eight = runs["one_device"], runs["eight_devices"]
    for key in ("score", "kl", "loss", "policy_loss", "value_loss", "kl_coef"):
        a, b = series(one.history, key), series(eight.history, key)
        assert sorted(a) == list(range(1, STEPS + 1)), key
        np.testing.assert_allclose([b[s] for s in a], [a[s] for s in a], rtol=1e-4, atol=1e-5,
                                   err_msg=key)
    kernel = eight.state.params["policy"]["h_0"]["mlp"]["fc"]["kernel"]
    assert not kernel.sharding.is_fully_replicated          # split over fsdp and tensor
    reward = eight.state.frozen["reward"]["backbone"]["h_0"]["mlp"]["fc"]["kernel"]
    assert reward.sharding.spec == kernel.sharding.spec     # frozen models: the same rules


@pytest.mark.slow
def test_kill_and_resume_during_ppo_is_exact(runs):
    full, resumed = runs["eight_devices"], runs["resumed"]
    after = series(resumed.history, "loss")
    assert sorted(after) == [3, 4]
    assert all(after[s] == series(full.history, "loss")[s] for s in after)
    assert all(series(resumed.history, "score")[s] == series(full.history, "score")[s]
               for s in after)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed.state.params),
                 jax.device_get(full.state.params))
    aux = jax.device_get(resumed.state.aux)
    assert float(aux["kl_coef"]) != 0.1                     # adapted, and restored
    jax.tree.map(np.testing.assert_array_equal, aux, jax.device_get(full.state.aux))


@pytest.mark.slow
def test_ppo_smoke_config_raises_its_score_standalone(tmp_path):
    """The standalone `:smoke` (fresh policy and reward model, no init_from) shows PPO learning:
    the reward model's score of the rollouts rises and the mean KL stays under the bound (8)."""
    import json
    from pretrainx import main
    workdir = tmp_path / "ppo_smoke"
    assert main.cli(["train", "--config", "configs/rlhf/shakespeare_ppo.py:smoke", "--workdir",
                     str(workdir), "--config.train.progress=False"]) in (0, None)
    rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    scores = [r["train/score"] for r in rows if "train/score" in r]
    kls = [r["train/kl"] for r in rows if "train/kl" in r]
    assert len(scores) >= 10
    first, last = np.mean(scores[:2]), np.mean(scores[-3:])
    assert last > first + 0.2, scores
    assert np.mean(kls) < 8.0 and np.mean(kls[-3:]) < 8.0, kls     # the mean KL, as the bound
