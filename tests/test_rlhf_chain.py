"""Issue 10's stages chained by ``init_from`` through the CLI, at toy size: a pretrained char GPT
-> VADER-labelled pairs of its own samples (``pretrainx pairs``) -> reward model -> PPO (policy,
reference and value trunk from the pretrained run, reward model from the reward run) and DPO;
``pretrainx sample --best-of N`` on the PPO run."""
import json
import os

import jax
import numpy as np
import pytest

from pretrainx import main

from pretrainx.core import checkpoint

from pretrainx.core import init_from
from pretrainx.tools.synthetic_prefs import distinct_2, repeated_token_share, true_score
from conftest import SHARED_DATA

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
SMALL = ["--config.mesh.data=1", "--config.train.progress=False"]


def train(config, workdir, *overrides):
    assert main.cli(["train", "--config", os.path.join(ROOT, config), "--workdir", str(workdir),
                     *SMALL, *overrides]) == 0


def params_of(workdir):
    source, _ = init_from.read_source(init_from.InitFrom(str(workdir)))
    return source["params"]


def test_vader_and_degeneracy_checks():
    scores = true_score(["I love thee, sweet and good lord", "death and hate", "the table"])
    assert scores[0] > 0.5 and scores[1] < -0.5 and scores[2] == 0
    assert distinct_2(["abab"]) == 2 / 3 and repeated_token_share(["good good good lord"]) == 0.5


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="../shared/data (Tiny Shakespeare) absent")
def test_pretrain_pairs_reward_ppo_dpo_chain(tmp_path, capsys):
    pre, pairs = tmp_path / "pretrain", tmp_path / "pairs.jsonl"
    train("configs/gpt/shakespeare_char.py:smoke", pre, "--config.train.steps=40",
          "--config.eval.every=40", "--config.checkpoint.every=40", "--config.model.num_layers=1",
          "--config.model.embed_dim=32")
    assert main.cli(["pairs", "--workdir", str(pre), "--out", str(pairs), "--prompts", "64",
                     "--samples", "4", "--max-new-tokens", "48"]) == 0
    records = [json.loads(line) for line in open(pairs)]
    assert records and all(r["scores"][0] > r["scores"][1] for r in records)
    chained = [f"--config.init_from.workdir={pre}", f"--config.data.path={pairs}",
               f"--config.data.tokenizer={pre}", "--config.model.num_layers=1",
               "--config.model.embed_dim=32", "--config.data.val_fraction=0.25"]
    rm = tmp_path / "reward"
    train("configs/rlhf/shakespeare_reward.py:smoke", rm, *chained, "--config.train.steps=6",
          "--config.eval.every=6", "--config.checkpoint.every=6", "--config.batch_size=8")
    pretrained, reward = params_of(pre), params_of(rm)
    # the trunk came from the pretraining run and then trained (a reward run of 6 steps)
    assert set(reward) == {"backbone", "head"}

    ppo = tmp_path / "ppo"
    train("configs/rlhf/shakespeare_ppo.py:smoke", ppo, f"--config.init_from.workdir={pre}",
          f"--config.init_from.also.reward.workdir={rm}", f"--config.data.tokenizer={pre}",
          "--config.model.num_layers=1", "--config.model.embed_dim=32", "--config.train.steps=2",
          "--config.eval.every=2", "--config.checkpoint.every=2", "--config.train.log_every=1")
    frozen = checkpoint_frozen(ppo)
    jax.tree.map(np.testing.assert_array_equal, frozen["reference"], pretrained)
    jax.tree.map(np.testing.assert_array_equal, frozen["reward"], reward)
    history = [json.loads(line) for line in open(ppo / "metrics.jsonl")]
    first = next(h for h in history if "train/kl" in h)
    assert first["step"] == 1 and abs(first["train/kl"]) < 1e-5     # policy == reference
    assert os.path.exists(ppo / "samples" / "step_000002.txt")

    capsys.readouterr()
    assert main.cli(["sample", "--workdir", str(ppo), "--best-of", "4", "--policy", "reference",
                     "--prompt", "ROMEO:\n", "--max-new-tokens", "20"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:\n") and "best of 4" in out

    dpo = tmp_path / "dpo"
    train("configs/rlhf/shakespeare_dpo.py:smoke", dpo, *chained, "--config.train.steps=2",
          "--config.eval.every=2", "--config.checkpoint.every=2", "--config.batch_size=8",
          "--config.train.log_every=1")   # the first row is then step 1's loss alone
    losses = [h["train/loss"] for h in map(json.loads, open(dpo / "metrics.jsonl"))
              if "train/loss" in h]
    np.testing.assert_allclose(losses[0], np.log(2), rtol=1e-5)     # policy == reference


def checkpoint_frozen(workdir):
    return init_from._read_numpy(os.path.abspath(os.path.join(workdir, checkpoint.FROZEN_DIR)), None)
