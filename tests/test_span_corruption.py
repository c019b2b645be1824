"""T5 span corruption: the length helper against T5's figures, the span-length draw against its
exact distribution, hand-worked corruptions (sentinel order, lengths, EOS), sentinel ids
descending from the top of a char vocabulary, and the objective in the runner."""
import math
import os

import jax
import numpy as np
import pytest

from pretrainx.config import load as config_lib

from pretrainx.core import train
from pretrainx.data import spans
from pretrainx.data import special_tokens as st
from pretrainx.objectives import span_corruption
from pretrainx.objectives.base import BatchContext
import specs

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
SMOKE = os.path.join(ROOT, "configs/t5/t5_small.py:smoke")


def test_raw_length_helper_reproduces_t5():
    # t5.data.preprocessors.random_spans_helper(512, 0.15, 3, 1, 1) == (568, 114)
    assert spans.raw_length_for(512, 0.15, 3.0) == (568, 114)
    assert spans.lengths_for_raw(568, 0.15, 3.0) == (512, 114)
    assert spans.span_counts(568, 0.15, 3.0) == (85, 28)
    assert spans.lengths_for_raw(569, 0.15, 3.0)[0] == 513          # one more does not fit
    # density 0.5: T5 trims a token so that targets do not outgrow the inputs
    raw, targets = spans.raw_length_for(512, 0.5, 3.0)
    assert targets <= 512 < spans.lengths_for_raw(raw + 1, 0.5, 3.0)[1]


class FixedDraws:
    """Stands in for a Generator: hands out given arrays in order."""

    def __init__(self, *arrays):
        self.arrays = list(arrays)

    def random(self, shape):
        out = np.asarray(self.arrays.pop(0), float).reshape(shape)
        return out


def test_segmentation_by_hand():
    # 6 items in 2 segments: the smallest of 5 keys (index 1) cuts after item 2 -> [2, 4]
    draws = FixedDraws([[0.9, 0.1, 0.5, 0.7, 0.8]])
    np.testing.assert_array_equal(spans.random_segmentation(draws, 1, 6, 2), [[2, 4]])
    # 3 segments: the two smallest keys (indices 3, 0) -> cuts after items 1 and 4 -> [1, 3, 2]
    draws = FixedDraws([[0.2, 0.9, 0.5, 0.1, 0.8]])
    np.testing.assert_array_equal(spans.random_segmentation(draws, 1, 6, 3), [[1, 3, 2]])


def test_noise_mask_by_hand():
    # 20 tokens at 0.15 / 3: 3 noise tokens in 1 span; one kept run of 17 first, then the span
    mask = spans.noise_mask(np.random.default_rng(0), 2, 20)
    np.testing.assert_array_equal(mask, [[False] * 17 + [True] * 3] * 2)
    # 40 tokens: 6 noise tokens in 2 spans; noise split [2 | 4], kept split [10 | 24]
    draws = FixedDraws([[0.9, 0.1, 0.5, 0.7, 0.8]], np.r_[np.ones(9), 0.0, np.ones(23)])
    mask = spans.noise_mask(draws, 1, 40)[0]
    expect = [0] * 10 + [1] * 2 + [0] * 24 + [1] * 4
    np.testing.assert_array_equal(mask.astype(int), expect)


def test_span_lengths_follow_t5s_distribution():
    """Noise tokens n split into k non-empty spans uniformly over the C(n-1, k-1) splits: the
    first span is j long with probability C(n-j-1, k-2) / C(n-1, k-1); spans average n / k."""
    rng = np.random.default_rng(0)
    L = 568
    mask = spans.noise_mask(rng, 4000, L)
    n, k = spans.span_counts(L, 0.15, 3.0)
    assert (mask.sum(axis=1) == n).all() and not mask[:, 0].any() and mask[:, -1].all()
    starts = mask & ~np.concatenate([np.zeros((len(mask), 1), bool), mask[:, :-1]], axis=1)
    assert (starts.sum(axis=1) == k).all()
    first_len = np.array([np.argmin(row[np.argmax(row):]) for row in mask])
    expected = np.array([math.comb(n - j - 1, k - 2) / math.comb(n - 1, k - 1)
                         for j in range(1, 8)])
    observed = np.array([(first_len == j).mean() for j in range(1, 8)])
    np.testing.assert_allclose(observed, expected, atol=0.025)
    assert abs(first_len.mean() - n / k) < 0.1


def test_corrupt_row_by_hand():
    tokens = np.arange(10, 20)        # 10 .. 19
    mask = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 1], bool)
    sentinels = [99, 98, 97, 96]      # <extra_id_0> at the top, descending
    inputs, targets = spans.corrupt_row(tokens, mask, sentinels, eos_id=1)
    assert inputs.tolist() == [10, 11, 99, 14, 15, 16, 98, 18, 97, 1]
    assert targets.tolist() == [99, 12, 13, 98, 17, 97, 19, 1]
    with pytest.raises(ValueError, match="sentinels"):
        spans.corrupt_row(tokens, mask, sentinels[:2], eos_id=1)


def test_span_corrupt_batch_lengths_and_reconstruction():
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 50, (8, 568))
    sentinels = list(range(127, 127 - 28, -1))
    inputs, targets, mask = spans.span_corrupt(rng, tokens, sentinels, eos_id=1)
    assert inputs.shape == (8, 512) and targets.shape == (8, 114)
    assert (inputs[:, -1] == 1).all() and (targets[:, -1] == 1).all()
    for b in range(8):                # putting the spans back gives the row again
        sent_in = [i for i, t in enumerate(inputs[b]) if t >= 100]
        assert inputs[b][sent_in].tolist() == sentinels and targets[b][0] == sentinels[0]
        pieces, cur = {}, None
        for t in targets[b][:-1]:
            if t >= 100:
                cur = t
                pieces[cur] = []
            else:
                pieces[cur].append(t)
        rebuilt = [x for t in inputs[b][:-1] for x in (pieces[t] if t >= 100 else [t])]
        assert rebuilt == tokens[b].tolist()


def test_char_vocabulary_gets_sentinels_descending_from_the_top():
    c = config_lib.load(SMOKE)
    request = span_corruption.SpanCorruption.data_request(c)
    obj = specs.built(span_corruption.SpanCorruption, c, "abc")
    assert request.seq_len == obj.raw_length == 70 and obj.targets_length == 14
    tok = obj.tokenizer
    ids = st.sentinel_ids(tok, obj.num_spans)
    assert ids[0] == tok.vocab_size - 1 and ids == list(range(tok.vocab_size - 1,
                                                               tok.vocab_size - 1 - obj.num_spans, -1))
    assert tok.encode("a<extra_id_0>b") == [0, ids[0], 1]


def smoke_config(**updates):
    return config_lib.override(config_lib.load(SMOKE), {
        "train.steps": 6, "train.log_every": 1, "train.progress": False, "eval.every": 6,
        "eval.num_batches": 2, "checkpoint.every": 3, "batch_size": 16, "eval.batch_size": 16,
        **updates})


def test_transform_makes_t5_batches():
    c = smoke_config()
    obj = specs.built(span_corruption.SpanCorruption, c, "abcdefgh")
    tok = obj.tokenizer
    assert (obj.pad_id, obj.eos_id) == (tok.token_id(st.PAD), tok.token_id(st.EOS))
    rows = np.random.default_rng(0).integers(0, 8, (4, obj.raw_length))
    ctx = BatchContext.single_process(4, step=2)
    a = obj.transform({"tokens": rows}, np.random.default_rng([0, 2]), ctx=ctx)
    b = obj.transform({"tokens": rows}, np.random.default_rng([0, 2]), ctx=ctx)
    np.testing.assert_array_equal(a["inputs"], b["inputs"])        # (seed, step) -> same spans
    assert a["inputs"].shape == (4, 64) and a["targets"].shape == (4, 14)
    assert (a["decoder_inputs"][:, 0] == obj.pad_id).all()
    np.testing.assert_array_equal(a["decoder_inputs"][:, 1:], a["targets"][:, :-1])


MESHES = {"one_device": dict(data=1, fsdp=1, tensor=1),
          "fsdp_tensor": dict(data=2, fsdp=2, tensor=2)}


@pytest.fixture(scope="module")
def t5_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("t5")
    runs = {}
    for name, mesh in MESHES.items():
        runs[name] = train.run(smoke_config(**{f"mesh.{k}": v for k, v in mesh.items()}),
                               str(base / name))
    cfg = smoke_config(**{f"mesh.{k}": v for k, v in MESHES["fsdp_tensor"].items()})
    assert train.run(cfg, str(base / "killed"), stop_after=4).stopped_early
    runs["resumed"] = train.run(cfg, str(base / "killed"))
    return runs


def by_step(history, key="train/loss"):
    return {h["step"]: h[key] for h in history if key in h}


@pytest.mark.slow
def test_t5_on_eight_devices_fsdp_tensor_equals_one_device(t5_runs):
    one, eight = by_step(t5_runs["one_device"].history), by_step(t5_runs["fsdp_tensor"].history)
    assert sorted(one) == sorted(eight) == list(range(1, 7))
    np.testing.assert_allclose([eight[s] for s in one], [one[s] for s in one], rtol=2e-5)
    emb = t5_runs["fsdp_tensor"].state.params["token_embedder"]["embedding"]
    assert not emb.sharding.is_fully_replicated


@pytest.mark.slow
def test_t5_kill_and_resume_is_exact(t5_runs):
    full, after = by_step(t5_runs["fsdp_tensor"].history), by_step(t5_runs["resumed"].history)
    assert sorted(after) == [4, 5, 6] and all(after[s] == full[s] for s in after)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(t5_runs["resumed"].state.params),
                 jax.device_get(t5_runs["fsdp_tensor"].state.params))


@pytest.mark.slow
def test_t5_smoke_lowers_the_loss_steadily_and_fills_spans(tmp_path, capsys):
    c = config_lib.override(config_lib.load(SMOKE), {"train.progress": False, "mesh.data": 1})
    history = train.run(c, str(tmp_path)).history
    val = [h["val/loss"] for h in history if "val/loss" in h]
    trained = [h["train/loss"] for h in history if "train/loss" in h]
    assert len(val) == 2 and val[1] < val[0] < trained[0], (val, trained[0])
    thirds = np.array_split(np.asarray(trained), 3)
    assert thirds[0].mean() > thirds[1].mean() > thirds[2].mean()
    from pretrainx import main
    capsys.readouterr()
    assert main.cli(["sample", "--workdir", str(tmp_path),
                     "--prompt", "ROMEO: I <extra_id_0> thee"]) == 0
    filled = capsys.readouterr().out.split("\n\n")[0]      # the prompt, its span filled in
    assert filled.startswith("ROMEO: I ") and "<extra_id_0>" not in filled
