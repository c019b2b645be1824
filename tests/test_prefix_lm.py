"""prefix_lm: suffix-only weights, prefix lengths drawn from (seed, step), the mixed attention
seen through the objective's own logits, sharding and sampling through the CLI."""
import os

import jax
import numpy as np
import pytest

from pretrainx import main

from pretrainx.config import load as config_lib

from pretrainx.core import train
from pretrainx.objectives import prefix_lm
from pretrainx.objectives.base import BatchContext
from resume_check import assert_kill_and_resume_is_exact, train_losses
import specs

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


# ---- causal + masked mixture on one decoder ---------------------------------------------------

MIX = os.path.join(ROOT, "configs/ul2/clm_mlm_char.py:smoke")


def _bound_mixture(**overrides):
    """A small CLM+MLM mixture bound to a 65-character tokenizer ([MASK] = 65)."""
    from pretrainx.objectives import clm_mlm
    c = config_lib.override(config_lib.load(MIX), {
        "data.seq_len": 16, "model.max_len": 16, "model.embed_dim": 32, **overrides})
    return specs.built(clm_mlm.CausalMaskedMixture, c, [chr(i) for i in range(40, 105)])


def test_clm_mlm_rows_and_component_losses():
    obj = _bound_mixture()
    raw = np.random.default_rng(0).integers(0, 65, (400, 17))
    b = obj.transform({"tokens": raw}, np.random.default_rng([0, 1]),
                      ctx=BatchContext.single_process(400, step=1))
    m = b["is_masked"] > 0
    assert 0.4 < m.mean() < 0.6
    np.testing.assert_array_equal(b["targets"][~m], raw[~m][:, 1:])      # next tokens
    np.testing.assert_array_equal(b["inputs"][~m], raw[~m][:, :16])
    assert (b["weights"][~m] == 1).all() and not b["prefix_mask"][~m].any()
    np.testing.assert_array_equal(b["targets"][m], raw[m][:, :16])       # the originals in place
    assert b["prefix_mask"][m].all() and abs(b["weights"][m].mean() - 0.15) < 0.02
    assert (b["inputs"][m][b["weights"][m] > 0] == 65).mean() > 0.7      # mostly [MASK]
    params = obj.init(jax.random.key(0))
    small = {k: v[:8] for k, v in b.items()}
    loss, metrics = obj.loss_fn(params, small, None, train=False, frozen={})
    metrics = obj.finalize_metrics(metrics)
    w, mm = small["weights"], small["is_masked"][:, None]
    logits = np.asarray(obj.logits(params, small, None, train=False))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, small["targets"][..., None], -1)[..., 0]
    for name, part in (("clm", w * (1 - mm)), ("mlm", w * mm)):
        assert float(metrics[f"{name}_loss"]) == pytest.approx((nll * part).sum() / part.sum(),
                                                               rel=1e-5)
    assert float(loss) == pytest.approx((nll * w).sum() / w.sum(), rel=1e-5)


def test_clm_mlm_eval_weight_sets_the_validation_rows_alone():
    """mixture.eval_mlm_weight: pure masked training (mlm_weight 1) still validates causally
    when it is 0; the default (< 0) keeps the training weight for validation."""
    from pretrainx.objectives import clm_mlm
    raw = np.random.default_rng(0).integers(0, 65, (64, 17))
    masked = {}
    for eval_weight in (0.0, -1.0):
        obj = _bound_mixture(**{"mixture.mlm_weight": 1.0, "mixture.eval_mlm_weight": eval_weight})
        for train_row in (True, False):
            ctx = BatchContext.single_process(64, step=1, train=train_row)
            b = obj.transform({"tokens": raw}, np.random.default_rng([0, 1]), ctx=ctx)
            masked[eval_weight, train_row] = b["is_masked"].mean()
            if not b["is_masked"].any():
                np.testing.assert_array_equal(b["targets"], raw[:, 1:])
    assert masked[0.0, True] == 1.0 and masked[0.0, False] == 0.0
    assert masked[-1.0, True] == 1.0 and masked[-1.0, False] == 1.0
    bad = config_lib.override(config_lib.load(MIX), {"mixture.mlm_weight": 1.0,
                                                     "mixture.eval_mlm_weight": 1.5})
    with pytest.raises(ValueError, match="eval_mlm_weight"):
        clm_mlm.CausalMaskedMixture.check_config(bad)


@pytest.mark.slow
@pytest.mark.parametrize("config,keys", [
    (SMOKE, ("train/loss",)),
    (MIX, ("train/loss", "train/clm_loss", "train/mlm_loss"))], ids=["prefix_lm", "clm_mlm"])
def test_kill_and_resume_is_exact(config, keys, tmp_path):
    """The prefix lengths (prefix_lm) and the row choice and masks (clm_mlm) are drawn from
    (seed, step): a run killed after step 4 and rerun from its step-3 checkpoint replays steps
    4-6 with the same losses, per component too, and ends with the same parameters."""
    cfg = config_lib.override(config_lib.load(config), {
        "train.steps": 6, "train.log_every": 1, "train.progress": False, "eval.every": 0,
        "checkpoint.every": 3, "batch_size": 8, "mesh.data": 1, "model.dropout": 0.1})
    full, _ = assert_kill_and_resume_is_exact(cfg, tmp_path, kill_after=4, keys=keys)
    steps = train_losses(full.history)
    assert len(set(steps.values())) == 6          # a different batch (and loss) every step
