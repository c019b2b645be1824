"""Masked LM: BERT's masking statistics over many draws, whole-word masking, the rate schedule,
the loss taken on the selected positions only, and the objective in the runner (the rate logged
per step, 8 devices = 1 device, kill -> resume exact)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.config import load as config_lib

from pretrainx.core import train
from pretrainx.data import masking
from pretrainx.data import special_tokens as st
from pretrainx.data.basic_tokenizers import CharTokenizer
from pretrainx.objectives import mlm
from pretrainx.objectives.base import BatchContext, DataSpec

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
SMOKE = os.path.join(ROOT, "configs/bert/bert_base.py:smoke")

# 26 letters and a space, then [PAD] [CLS] [SEP] [MASK] = ids 27..30
TOK = CharTokenizer(list(" abcdefghijklmnopqrstuvwxyz"), [st.PAD, st.CLS, st.SEP, st.MASK])
TABLES = masking.vocab_tables(TOK, vocab_size=32)            # id 31: past the tokenizer, special
PAD, CLS, SEP, MASK = (TOK.token_id(t) for t in (st.PAD, st.CLS, st.SEP, st.MASK))


def test_vocab_tables_mark_specials_and_ids_past_the_tokenizer():
    assert MASK == 30 and TABLES.mask_id == MASK
    assert list(np.flatnonzero(TABLES.special)) == [PAD, CLS, SEP, MASK, 31]
    assert set(TABLES.ordinary_ids) == set(range(27))


def batch_with_specials(rng, B=64, T=128):
    """Random letters with [CLS] first, [SEP]s, some [MASK]s already in the text, and padding
    (segment id 0) at the end of every row."""
    tokens = rng.integers(0, 27, (B, T))
    tokens[:, 0] = CLS
    tokens[rng.random((B, T)) < 0.05] = SEP
    tokens[rng.random((B, T)) < 0.02] = MASK
    segments = np.ones((B, T), np.int32)
    for b, n in enumerate(rng.integers(T // 2, T, B)):
        segments[b, n:] = 0
        tokens[b, n:] = PAD
    return tokens, segments


def test_selection_rate_split_and_specials_over_many_draws():
    rng = np.random.default_rng(0)
    selected_n = candidates_n = 0
    how_counts = np.zeros(4, np.int64)
    for _ in range(40):
        tokens, segments = batch_with_specials(rng)
        cand = masking.candidates(tokens, TABLES, segments)
        sel = masking.select_positions(rng, cand, 0.15)
        # special tokens and padding are never selected
        assert not sel[TABLES.special[tokens]].any() and not sel[segments == 0].any()
        inputs, how = masking.corrupt(rng, tokens, sel, TABLES)
        selected_n += sel.sum()
        candidates_n += cand.sum()
        how_counts += np.bincount(how.ravel(), minlength=4)
        # unselected positions are untouched; a random replacement is an ordinary token
        np.testing.assert_array_equal(inputs[~sel], tokens[~sel])
        assert (inputs[how == 1] == MASK).all()
        assert not TABLES.special[inputs[how == 2]].any()
        np.testing.assert_array_equal(inputs[how == 3], tokens[how == 3])
    assert candidates_n > 150_000
    assert abs(selected_n / candidates_n - 0.15) < 0.005
    split = how_counts[1:] / how_counts[1:].sum()
    np.testing.assert_allclose(split, [0.8, 0.1, 0.1], atol=0.01)


def test_selection_count_is_the_rate_in_expectation_per_row():
    """Stochastic rounding: a row of 10 candidates at 15 % selects 1 or 2 tokens, 1.5 on average."""
    rng = np.random.default_rng(1)
    cand = np.zeros((4000, 16), bool)
    cand[:, 3:13] = True
    counts = masking.select_positions(rng, cand, 0.15).sum(axis=1)
    assert set(np.unique(counts)) == {1, 2}
    assert abs(counts.mean() - 1.5) < 0.03


def test_whole_word_masking_takes_every_piece_of_a_word():
    text = "the quick brown fox jumps over the lazy dog again and again"
    tokens = np.asarray([[CLS] + TOK.encode(text)] * 400)
    starts = masking.word_starts(tokens, TABLES)
    words = "".join("|" if s else "." for s in starts[0])
    assert words.count("|") == 1 + 12 + 11          # [CLS], 12 words, 11 spaces (a word each)
    rng = np.random.default_rng(2)
    cand = masking.candidates(tokens, TABLES)
    sel = masking.select_positions(rng, cand, 0.15, starts)
    word_id = np.cumsum(starts, axis=1)
    for b in range(len(tokens)):           # a word is selected whole or not at all
        for w in np.unique(word_id[b][sel[b]]):
            assert sel[b][word_id[b] == w].all()
    units = (cand & starts).sum(axis=1)
    chosen_units = (sel & starts).sum(axis=1)
    assert abs(chosen_units.sum() / units.sum() - 0.15) < 0.01


def test_wordpiece_markers_glue_continuations():
    class WordPieces:
        kind = "wordpiece"
        specials = [st.MASK]

        def token_strings(self):
            return ["un", "##believ", "##able", "yes", st.MASK]

        def has_token(self, name):
            return name == st.MASK

        def token_id(self, name):
            return 4

    tables = masking.vocab_tables(WordPieces())
    starts = masking.word_starts(np.asarray([[3, 0, 1, 2, 3]]), tables)
    np.testing.assert_array_equal(starts[0], [True, True, False, False, True])


def test_rate_schedules():
    assert masking.masking_rate("constant", 0.3, 0.15, 0.5) == 0.15
    assert masking.masking_rate("linear", 0.3, 0.15, 0.0) == pytest.approx(0.3)
    assert masking.masking_rate("linear", 0.3, 0.15, 0.5) == pytest.approx(0.225)
    assert masking.masking_rate("cosine", 0.3, 0.15, 0.5) == pytest.approx(0.225)
    assert masking.masking_rate("cosine", 0.3, 0.15, 0.25) > 0.225 + 0.02
    assert masking.masking_rate("cosine", 0.3, 0.15, 1.0) == pytest.approx(0.15)
    with pytest.raises(ValueError, match="schedule"):
        masking.masking_rate("step", 0.3, 0.15, 0.5)


def test_loss_has_zero_gradient_from_unselected_positions():
    rng = np.random.default_rng(3)
    B, T, V = 4, 16, 32
    logits = jnp.asarray(rng.normal(size=(B, T, V)), jnp.float32)
    weights = (rng.random((B, T)) < 0.2).astype(np.float32)
    weights[0, 0] = 1.0
    batch = {"targets": jnp.asarray(rng.integers(0, 27, (B, T)), jnp.int32),
             "weights": jnp.asarray(weights)}
    grad = jax.grad(lambda l: mlm.masked_lm_loss(l, batch, 0)[0])(logits)
    norms = np.abs(np.asarray(grad)).sum(-1)
    assert (norms[weights == 0] == 0).all() and (norms[weights == 1] > 0).all()
    # changing the targets of unselected positions changes nothing
    other = dict(batch, targets=jnp.where(batch["weights"] > 0, batch["targets"], 5))
    loss, metrics = mlm.masked_lm_loss(logits, batch, 0)
    assert float(mlm.masked_lm_loss(logits, other, 0)[0]) == float(loss)
    assert float(metrics["denominator"]) == weights.sum()


def smoke_config(**updates):
    c = config_lib.load(SMOKE)
    return config_lib.override(c, {"train.steps": 6, "train.log_every": 1, "train.progress": False,
                                   "eval.every": 6, "eval.num_batches": 2, "checkpoint.every": 3,
                                   "batch_size": 16, "eval.batch_size": 16,
                                   "data.seq_len": 32, "model.max_len": 32,
                                   "mlm.rate_schedule": "linear", "mlm.rate_start": 0.3,
                                   "mlm.rate": 0.15, **updates})


def test_transform_draws_depend_on_seed_and_step_only():
    c = smoke_config()
    obj = mlm.MaskedLM(c, DataSpec(TOK))
    assert obj.cls_id == CLS and obj.mask_id == MASK
    tokens = np.random.default_rng(4).integers(0, 27, (8, 31))
    out = [obj.transform({"tokens": tokens}, np.random.default_rng([0, s]),
                         ctx=BatchContext.single_process(8, step=s, total_steps=6))
           for s in (3, 3, 4)]
    np.testing.assert_array_equal(out[0]["inputs"], out[1]["inputs"])
    assert (out[0]["inputs"] != out[2]["inputs"]).any()            # a fresh mask every step
    assert (out[0]["inputs"][:, 0] == CLS).all() and out[0]["inputs"].shape == (8, 32)
    assert out[0]["mask_rate"][0] == pytest.approx(0.3 + (0.15 - 0.3) * 3 / 6)
    # two processes each drawing for the global batch make the same rows as one process
    halves = [obj.transform({"tokens": tokens[r]}, np.random.default_rng([0, 3]),
                            ctx=BatchContext(3, 3, 6, 8, r)) for r in (slice(0, 4), slice(4, 8))]
    np.testing.assert_array_equal(np.concatenate([h["inputs"] for h in halves]), out[0]["inputs"])


MESHES = {"one_device": dict(data=1, fsdp=1, tensor=1),
          "fsdp_tensor": dict(data=2, fsdp=2, tensor=2)}


@pytest.fixture(scope="module")
def mlm_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("mlm")
    runs = {}
    for name, mesh in MESHES.items():
        cfg = smoke_config(**{f"mesh.{k}": v for k, v in mesh.items()})
        runs[name] = train.run(cfg, str(base / name))
    cfg = smoke_config(**{f"mesh.{k}": v for k, v in MESHES["fsdp_tensor"].items()})
    killed = train.run(cfg, str(base / "killed"), stop_after=4)      # saved at 3, dies after 4
    assert killed.stopped_early
    runs["resumed"] = train.run(cfg, str(base / "killed"))
    return runs


def by_step(history, key="train/loss"):
    return {h["step"]: h[key] for h in history if key in h}


@pytest.mark.slow
def test_mlm_rate_is_logged_every_step_and_follows_the_schedule(mlm_runs):
    rates = by_step(mlm_runs["one_device"].history, "train/mask_rate")
    assert sorted(rates) == list(range(1, 7))
    # the batch of step s (0-based s = step - 1) masks at 0.3 -> 0.15 over 6 steps
    np.testing.assert_allclose([rates[s] for s in range(1, 7)],
                               [0.3 - 0.15 * (s - 1) / 6 for s in range(1, 7)], rtol=1e-6)
    final = mlm_runs["one_device"].history[-1]
    assert final["val/mask_rate"] == pytest.approx(0.15)
    assert 0.13 < final["val/selected_fraction"] < 0.17


@pytest.mark.slow
def test_mlm_on_eight_devices_fsdp_tensor_equals_one_device(mlm_runs):
    one, eight = by_step(mlm_runs["one_device"].history), by_step(mlm_runs["fsdp_tensor"].history)
    assert sorted(one) == sorted(eight) == list(range(1, 7))
    np.testing.assert_allclose([eight[s] for s in one], [one[s] for s in one], rtol=2e-5)
    wte = mlm_runs["fsdp_tensor"].state.params["wte"]["embedding"]
    assert not wte.sharding.is_fully_replicated


@pytest.mark.slow
def test_mlm_kill_and_resume_is_exact(mlm_runs):
    full, after = by_step(mlm_runs["fsdp_tensor"].history), by_step(mlm_runs["resumed"].history)
    assert sorted(after) == [4, 5, 6]
    assert all(after[s] == full[s] for s in after)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(mlm_runs["resumed"].state.params),
                 jax.device_get(mlm_runs["fsdp_tensor"].state.params))


@pytest.mark.slow
def test_bert_smoke_beats_the_unigram_baseline_on_held_out_text(tmp_path):
    c = config_lib.override(config_lib.load(SMOKE), {"train.progress": False, "mesh.data": 1})
    final = [h for h in train.run(c, str(tmp_path)).history if "val/accuracy" in h][-1]
    # the most frequent character (a space) on the same masked positions: ~0.15
    assert final["val/accuracy"] > 2 * final["val/unigram_accuracy"], final
    from pretrainx import main
    assert main.cli(["sample", "--workdir", str(tmp_path), "--prompt", "ROMEO: I [MASK]ove"]) == 0
