"""prefix_lm: suffix-only weights, prefix lengths drawn from (seed, step), the mixed attention
seen through the objective's own logits, sharding and sampling through the CLI."""
import os

import jax
import numpy as np
import pytest

from pretrainx import config_lib, main, train
from pretrainx.objectives import prefix_lm
from pretrainx.objectives.base import BatchContext

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
SMOKE = os.path.join(ROOT, "configs/ul2/prefix_lm_char.py:smoke")


def test_suffix_weights_by_hand():
    np.testing.assert_array_equal(prefix_lm.suffix_weights([1, 3, 5], 5),
                                  [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]])


def small_objective():
    c = config_lib.override(config_lib.load(SMOKE), {
        "data.seq_len": 8, "model.max_len": 8, "model.vocab_size": 16, "model.embed_dim": 32})
    return prefix_lm.PrefixLM(c)


def test_prefix_lengths_cover_the_range_and_repeat_per_step():
    obj = small_objective()
    batch = {"inputs": np.zeros((512, 8), np.int32), "targets": np.zeros((512, 8), np.int32)}
    ctx = BatchContext.single_process(512, step=7)
    a = obj.transform(batch, np.random.default_rng([0, 7]), ctx=ctx)
    b = obj.transform(batch, np.random.default_rng([0, 7]), ctx=ctx)
    np.testing.assert_array_equal(a["prefix_length"], b["prefix_length"])
    assert set(a["prefix_length"].tolist()) == set(range(1, 9))
    np.testing.assert_array_equal(a["weights"], prefix_lm.suffix_weights(a["prefix_length"], 8))


def test_prefix_positions_see_the_whole_prefix_suffix_positions_only_the_past():
    """Changing input token j moves the logits of position i exactly where i sees j: every
    position sees the prefix (4 tokens), a suffix position only the tokens up to itself. (The
    output head is tied to the embeddings, so a gradient with respect to the table would flow
    into every position through the head: inputs are changed instead.)"""
    obj = small_objective()
    params = obj.init(jax.random.key(0))
    tokens = np.arange(1, 9, dtype=np.int32)[None]
    prefix = np.asarray([4])
    logits = jax.jit(lambda t: obj.logits(params, {"inputs": t, "prefix_length": prefix}, None,
                                          train=False))
    base = np.asarray(logits(tokens))[0]
    dep = np.zeros((8, 8), bool)
    for j in range(8):
        changed = tokens.copy()
        changed[0, j] = 12
        dep[:, j] = np.abs(np.asarray(logits(changed))[0] - base).max(-1) > 1e-6
    I, J = np.arange(8)[:, None], np.arange(8)[None, :]
    np.testing.assert_array_equal(dep, (J <= I) | (J < 4))


def test_prefix_lm_needs_prefix_attention():
    c = config_lib.override(config_lib.load(SMOKE), {"model.attention_kind": "causal"})
    with pytest.raises(ValueError, match="attention_kind='prefix'"):
        prefix_lm.PrefixLM(c)


@pytest.mark.slow
def test_prefix_lm_eight_devices_equal_one_and_samples(tmp_path, capsys):
    losses = {}
    for name, mesh in {"one": (1, 1, 1), "eight": (2, 2, 2)}.items():
        c = config_lib.override(config_lib.load(SMOKE), {
            "train.steps": 4, "train.log_every": 1, "train.progress": False, "eval.every": 4,
            "eval.num_batches": 1, "checkpoint.every": 4, "batch_size": 16,
            "model.vocab_size": 72,               # 65 characters do not split over 2 tensor shards
            "mesh.data": mesh[0], "mesh.fsdp": mesh[1], "mesh.tensor": mesh[2]})
        hist = train.run(c, str(tmp_path / name)).history
        losses[name] = [h["train/loss"] for h in hist if "train/loss" in h]
    assert len(losses["one"]) == 4
    np.testing.assert_allclose(losses["eight"], losses["one"], rtol=2e-5)
    capsys.readouterr()
    assert main.cli(["sample", "--workdir", str(tmp_path / "one"), "--prompt", "ROMEO:",
                     "--max-new-tokens", "10"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO:")
