"""The reward, DPO and PPO objectives on tiny models: preference data (HH-RLHF split, plain pairs,
left cuts), the Bradley-Terry and DPO losses at their fixed points, KV-cache rollouts = full
recomputation, per-token KL, frozen parameters that never move, exact resume."""
import gzip
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.config import load as config_lib, sections

from pretrainx.core import train
from pretrainx.data import preferences
from pretrainx.data.basic_tokenizers import ByteTokenizer
from pretrainx.objectives import lm_utils

import toy_objectives as toys

ROOT = toys.ROOT
TINY_MODEL = {"model.vocab_size": 256, "model.num_layers": 1, "model.num_heads": 2,
              "model.embed_dim": 16, "model.max_len": 24, "model.dropout": 0.0,
              "model.attention_dropout": 0.0}


def write_pairs(path, n=40):
    """Plain pairs where the chosen response is positive and the rejected one is not."""
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        for i in range(n):
            prompt = "".join(rng.choice(list("abcdef"), 6))
            f.write(json.dumps({"prompt": prompt, "chosen": " good!", "rejected": " bad."}) + "\n")
    return str(path)


def pairs_config(objective, path, **updates):
    c = toys.config(objective, **TINY_MODEL)
    c.data = sections.preference_data(path, format="auto", tokenizer=c.data.tokenizer, seq_len=16)
    c = config_lib.override(c, {"batch_size": 8, "eval.batch_size": 8, "data.val_fraction": 0.25})
    c.reward = config_lib.override(sections.reward(), {"centring": 0.0})
    c.dpo = sections.dpo()
    return config_lib.override(c, updates)


def test_hh_dialogues_split_at_the_last_assistant_turn_and_cut_from_the_left(tmp_path):
    dialogue = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how are you?\n\nAssistant:"
    record = {"chosen": dialogue + " fine, thanks", "rejected": dialogue + " go away"}
    path = tmp_path / "hh.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(record) + "\n")
    (pair,) = preferences.read_pairs(str(path))
    assert pair["prompt"] == dialogue and pair["chosen"] == " fine, thanks"
    assert pair["rejected"] == " go away"
    row, mask, response, cut = preferences.encode_side(ByteTokenizer(), pair["prompt"],
                                                       pair["chosen"], 24)
    assert cut and mask.all()                       # 58 + 13 bytes kept as the last 24
    assert bytes(row.tolist()).decode().endswith("\nAssistant: fine, thanks")
    assert response.sum() == len(" fine, thanks") and response[-1] == 1 and response[0] == 0
    row, mask, response, cut = preferences.encode_side(ByteTokenizer(), "ab", "cd", 8)
    assert not cut and mask.tolist() == [1] * 4 + [0] * 4
    assert response.tolist() == [0, 0, 1, 1, 0, 0, 0, 0]


def test_the_real_hh_file_splits_by_seed(tmp_path):
    path = os.path.join(ROOT, "..", "shared", "data", "hh-rlhf", "harmless-base-test.jsonl.gz")
    if not os.path.exists(path):
        pytest.skip("../shared/data/hh-rlhf absent")
    c = config_lib.load(os.path.join(ROOT, "configs/rlhf/hh_reward.py:smoke"))
    built = train.build_dataset(c, train.objectives.get("reward")(c))
    info = built.info
    assert info["train_pairs"] + info["val_pairs"] == 2312 and info["val_pairs"] == 462
    assert 0 < info["cut_pairs"] < 2312


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return write_pairs(tmp_path_factory.mktemp("pairs") / "pairs.jsonl")


@pytest.mark.slow
def test_reward_model_starts_at_log2_and_learns_the_pairs(pairs_file, tmp_path):
    c = pairs_config("reward", pairs_file, **{"train.steps": 12, "optimizer.lr": 3e-3,
                                              "optimizer.decay_steps": 12, "eval.every": 12,
                                              "eval.num_batches": 3, "checkpoint.every": 12})
    result = train.run(c, str(tmp_path))
    losses = [h["train/loss"] for h in result.history if "train/loss" in h]
    np.testing.assert_allclose(losses[0], math.log(2), rtol=1e-6)     # zero head: equal rewards
    val = [h for h in result.history if "val/accuracy" in h][-1]
    assert losses[-1] < 0.7 * math.log(2) and val["val/accuracy"] == 1.0, (losses, val)


@pytest.mark.slow
def test_dpo_is_log2_at_the_start_and_the_reference_never_changes(pairs_file):
    c = pairs_config("dpo", pairs_file, **{"optimizer.lr": 3e-3})
    built = train.setup(c)
    state = built.state
    reference = jax.device_get(state.frozen["reference"])
    jax.tree.map(np.testing.assert_array_equal, reference, jax.device_get(state.params))
    from pretrainx.core import sharding
    history = []
    for i in range(3):
        state, m = built.step_fn(state, sharding.put_batch(built.host_batch(built.dataset.train, i),
                                                           built.mesh))
        history.append(jax.device_get(m))
    np.testing.assert_allclose(history[0]["loss"], math.log(2), rtol=1e-6)
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["reward_margin"] > 0
    jax.tree.map(np.testing.assert_array_equal, reference, jax.device_get(state.frozen["reference"]))
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), reference, jax.device_get(state.params))
    assert max(jax.tree.leaves(moved)) > 1e-4


# ---- PPO ------------------------------------------------------------------------------------

def ppo_config(**updates):
    c = config_lib.load(os.path.join(ROOT, "configs/rlhf/shakespeare_ppo.py:smoke"))
    base = {"data.path": "stdlib", "data.max_bytes": 100_000, "data.tokenizer": "byte",
            **TINY_MODEL, "data.seq_len": 6, "ppo.prompt_len": 6, "ppo.max_new_tokens": 10,
            "batch_size": 8, "eval.batch_size": 8, "eval.every": 0, "train.steps": 4,
            "train.log_every": 1, "train.progress": False, "checkpoint.every": 100,
            "optimizer.lr": 1e-3, "optimizer.end_lr": 1e-3, "mesh.data": 1, "ppo.kl_coef": 0.1}
    base.update(updates)
    return config_lib.override(c, base)


@pytest.fixture(scope="module")
def ppo_built():
    return train.setup(ppo_config(**{"ppo.eos": " "}))


@pytest.mark.slow
def test_kv_cache_rollout_matches_full_recomputation(ppo_built):
    obj, state = ppo_built.objective, ppo_built.state
    prompts = jnp.asarray(ppo_built.host_batch(ppo_built.dataset.train, 0)["tokens"])
    from pretrainx.models import decoding, gpt
    params = state.params["policy"]
    for greedy in (False, True):
        out = jax.jit(lambda p, x, r: decoding.decode(
            gpt.GPTDecoder(obj.model_config), p, x, jnp.ones(x.shape, bool), r,
            max_new_tokens=obj.max_new, greedy=greedy, eos_id=obj.eos_id))(
                params, prompts, jax.random.key(1))
        sequence = jnp.concatenate([prompts, out.tokens], 1)
        logits = obj.policy.apply({"params": params}, sequence)
        logp, _ = lm_utils.token_logprobs(logits, sequence)
        mask = np.arange(obj.max_new)[None] < np.asarray(out.lengths)[:, None]
        P = prompts.shape[1]
        np.testing.assert_allclose(np.where(mask, logp[:, P:], 0), out.log_probs, atol=2e-5)
        if greedy:   # every greedy token is the argmax of the full recomputation before it
            argmax = np.asarray(jnp.argmax(logits[:, P - 1:-1], -1))
            np.testing.assert_array_equal(np.where(mask, argmax, 0), np.asarray(out.tokens))
    assert (np.asarray(out.lengths) < obj.max_new).any(), "no row stopped at EOS"


def direct_kl(obj, policy, reference, sequence, mask):
    """Σ_t log π(y_t) − log π_ref(y_t) over each response, one position at a time."""
    P = sequence.shape[1] - obj.max_new
    total = np.zeros(sequence.shape[0])
    lp = jax.nn.log_softmax(obj.policy.apply({"params": policy}, sequence))
    lr = jax.nn.log_softmax(obj.policy.apply({"params": reference}, sequence))
    for t in range(obj.max_new):
        tok = np.asarray(sequence[:, P + t])
        rows = np.arange(len(tok))
        total += mask[:, t] * (np.asarray(lp[rows, P + t - 1, tok]) - np.asarray(lr[rows, P + t - 1, tok]))
    return total


def test_per_token_kl_is_zero_for_identical_policies_and_matches_a_direct_sum(ppo_built):
    obj, state = ppo_built.objective, ppo_built.state
    batch = {k: jnp.asarray(v) for k, v in ppo_built.host_batch(ppo_built.dataset.train, 0).items()}
    ctx = train.objectives.StepContext(step=jnp.int32(0), aux=state.aux)
    prepare = jax.jit(lambda p, f, b, r: obj.prepare(p, f, b, r, ctx))
    out = prepare(state.params, state.frozen, batch, jax.random.key(2))
    np.testing.assert_array_equal(out["kl"], 0.0)                  # reference == initial policy
    moved = dict(state.params)
    moved["policy"] = jax.tree.map(lambda x: x * 1.1, state.params["policy"])
    out = prepare(moved, state.frozen, batch, jax.random.key(2))
    want = direct_kl(obj, moved["policy"], state.frozen["reference"], out["sequence"],
                     np.asarray(out["mask"]))
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(out["kl"], want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
def test_ppo_trains_the_policy_and_never_the_reference_or_reward(ppo_built):
    from pretrainx.core import sharding
    state = ppo_built.state
    before = jax.device_get({"params": state.params, "frozen": state.frozen})
    metrics = []
    for i in range(3):
        state, m = ppo_built.step_fn(state, sharding.put_batch(
            ppo_built.host_batch(ppo_built.dataset.train, i), ppo_built.mesh))
        metrics.append(jax.device_get(m))
    after = jax.device_get({"params": state.params, "frozen": state.frozen})
    jax.tree.map(np.testing.assert_array_equal, before["frozen"], after["frozen"])
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), before["params"], after["params"])
    assert min(jax.tree.leaves(moved["policy"])) >= 0 and max(jax.tree.leaves(moved["policy"])) > 1e-4
    assert metrics[0]["clip_fraction"] == 0.0 or metrics[0]["clip_fraction"] < 0.5
    assert metrics[-1]["kl"] != 0.0 and np.isfinite(metrics[-1]["loss"])
    for key in ("score", "kl", "entropy", "clip_fraction", "value_loss", "explained_variance",
                "response_length", "kl_coef"):
        assert key in metrics[-1], key


@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
def test_ppo_with_a_value_head_on_the_policy_trunk_and_whitened_rewards():
    from pretrainx.core import sharding
    built = train.setup(ppo_config(**{"ppo.value_head": "shared", "ppo.whiten_rewards": True}))
    assert set(built.state.params) == {"policy", "value_head"}
    before = jax.device_get(built.state.params["value_head"])
    state, m = built.step_fn(built.state, sharding.put_batch(
        built.host_batch(built.dataset.train, 0), built.mesh))
    m = jax.device_get(m)
    assert np.isfinite(m["loss"]) and m["value_loss"] > 0
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), before,
                         jax.device_get(state.params["value_head"]))
    assert max(jax.tree.leaves(moved)) > 0          # the value loss trains the shared head


@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
def test_reward_scores_read_the_last_real_token_or_the_mean_over_real_tokens():
    from pretrainx.models import gpt, transformer
    cfg = transformer.TransformerConfig.from_config(
        config_lib.override(toys.config("clm", **TINY_MODEL), {}).model)
    model = gpt.GPTScalar(cfg)
    params = jax.tree.map(lambda x: x + 0.3, model.init(jax.random.key(0),
                                                        jnp.zeros((1, 8), jnp.int32))["params"])
    tokens = jnp.arange(16, dtype=jnp.int32).reshape(2, 8)
    mask = jnp.array([[1] * 8, [1] * 3 + [0] * 5], bool)
    out = model.apply({"params": params}, tokens)
    last = lm_utils.reward_scores(model, params, tokens, mask)
    mean = lm_utils.reward_scores(model, params, tokens, mask, pool="mean")
    np.testing.assert_allclose(last, [out[0, 7], out[1, 2]], rtol=1e-6)
    np.testing.assert_allclose(mean, [out[0].mean(), out[1, :3].mean()], rtol=1e-5)


def scored_pairs(n=200):
    """Plain pairs with rule scores; pair i's margin is (i % 10) / 10."""
    return [{"prompt": f"p{i}", "chosen": "a", "rejected": "b", "rejected_prompt": f"p{i}",
             "margin": (i % 10) / 10} for i in range(n)]


def test_dev_split_never_trains_and_the_margin_filter_keeps_a_subset_of_the_held_out_pairs():
    pairs = scored_pairs()
    split = lambda **kw: preferences.split_pairs(pairs, seed=3, val_fraction=0.2, **kw)
    names = lambda part: {p["prompt"] for p in part}
    train0, test0 = split()                                   # the split of every earlier run
    order = np.random.default_rng(3).permutation(200)
    assert [p["prompt"] for p in test0] == [f"p{i}" for i in order[160:]] and len(train0) == 160
    train_d, dev = split(dev_fraction=0.1, eval_split="dev")
    train_t, test = split(dev_fraction=0.1, eval_split="test")
    assert len(dev) == 20 and names(test) == names(test0) and names(train_d) == names(train_t)
    assert not names(dev) & (names(train_t) | names(test)) and len(train_t) == 140
    train_m, test_m = split(dev_fraction=0.1, min_margin=0.5)
    assert names(test_m) < names(test) and names(train_m) < names(train_t)
    assert all(p["margin"] >= 0.5 for p in train_m + test_m)
    assert names(test_m) == {p["prompt"] for p in test if p["margin"] >= 0.5}
    with pytest.raises(ValueError, match="eval_split"):
        split(eval_split="val")


def test_margins_are_read_from_the_rule_scores_and_required_by_the_filter(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "x", "chosen": "good", "rejected": "bad",
                                "scores": [0.25, -0.5]}) + "\n")
    (pair,) = preferences.read_pairs(str(path))
    assert pair["margin"] == 0.75
    unscored = [{k: v for k, v in pair.items() if k != "margin"}] * 4
    with pytest.raises(ValueError, match="scores"):
        preferences.split_pairs(unscored, seed=0, val_fraction=0.25, min_margin=0.1)
    train_part, held_out = preferences.split_pairs(unscored, seed=0, val_fraction=0.25)
    assert len(train_part) == 3 and len(held_out) == 1       # no filter: no scores needed


def test_eval_overrides_change_only_data_and_eval_keys(tmp_path, capsys):
    from pretrainx import main
    code = main.cli(["eval", "--workdir", str(tmp_path), "--config.optimizer.lr=1.0"])
    assert (code == main.EXIT_USER_ERROR
            and "only --config.data.* and --config.eval.*" in capsys.readouterr().err)


@pytest.mark.slow
def test_a_reward_run_chosen_on_dev_is_scored_on_the_held_out_pairs_by_eval_overrides(tmp_path, capsys):
    from pretrainx import main
    path = tmp_path / "scored.jsonl"
    with open(path, "w") as f:
        for i in range(48):
            f.write(json.dumps({"prompt": f"q{i:02d}", "chosen": " good!", "rejected": " bad.",
                                "scores": [0.6 if i % 2 else 0.05, 0.0]}) + "\n")
    c = pairs_config("reward", str(path), **{"train.steps": 12, "optimizer.lr": 3e-3,
                                             "optimizer.decay_steps": 12, "eval.every": 12,
                                             "eval.num_batches": 3, "checkpoint.every": 12})
    c.data.update({"dev_fraction": 0.25, "eval_split": "dev", "min_margin": 0.3})
    built = train.build_dataset(c, train.objectives.get("reward")(c))
    info = built.info                       # 24 train + 12 dev + 12 test, about half kept
    assert 0 < info["train_pairs"] < 24 and 0 < info["val_pairs"] < 12 and info["read_pairs"] == 48
    train.run(c, str(tmp_path / "run"))
    capsys.readouterr()
    assert main.cli(["eval", "--workdir", str(tmp_path / "run"), "--config.data.eval_split=test",
                     "--config.data.min_margin=0"]) == 0
    lines = dict(line.split() for line in capsys.readouterr().out.strip().splitlines())
    assert float(lines["val/accuracy"]) == 1.0 and float(lines["val/loss"]) < 0.7 * math.log(2)
    # 1 batch of 8 rows would score 8 of the 12 held-out pairs: refused, naming the fix
    assert main.cli(["eval", "--workdir", str(tmp_path / "run"), "--config.data.eval_split=test",
                     "--config.data.min_margin=0", "--config.eval.num_batches=1"]) == main.EXIT_USER_ERROR
    assert "--config.eval.num_batches=2" in capsys.readouterr().err
