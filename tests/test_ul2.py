"""UL2 mixture of denoisers: per-row choice by weight, mode tokens, each denoiser's rows, the
per-denoiser losses pooled exactly, and the mixture sharded / resumed in the runner."""
import os

import jax
import numpy as np
import pytest

from pretrainx import main

from pretrainx.config import load as config_lib

from pretrainx.core import train
from pretrainx.data import special_tokens as st
from pretrainx.objectives import ul2
from pretrainx.objectives.base import BatchContext
import specs

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
SMOKE = os.path.join(ROOT, "configs/ul2/ul2_small.py:smoke")


def bound(config):
    obj = specs.built(ul2.UL2, config, [chr(i) for i in range(40, 100)])
    return obj, obj.tokenizer


def test_rows_follow_their_denoiser():
    obj, tok = bound(config_lib.load(SMOKE))
    B = 600
    tokens = np.random.default_rng(0).integers(0, 60, (B, obj.raw_length))
    out = obj.transform({"tokens": tokens}, np.random.default_rng([0, 5]),
                        ctx=BatchContext.single_process(B, step=5))
    choice = out["denoiser"]
    np.testing.assert_allclose(np.bincount(choice, minlength=3) / B, [0.4, 0.3, 0.3], atol=0.06)
    modes = [tok.token_id(m) for m in (st.NLU, st.NLG, st.S2S)]
    np.testing.assert_array_equal(out["inputs"][:, 0], np.asarray(modes)[choice])
    in_len, out_len = out["encoder_mask"].sum(1), out["weights"].sum(1)
    assert out["inputs"].shape == (B, 64) and out["targets"].shape == (B, 32)
    eos, pad = tok.token_id(st.EOS), tok.token_id(st.PAD)
    rows = np.arange(B)
    assert (out["inputs"][rows, in_len - 1] == eos).all()
    assert (out["targets"][rows, out_len.astype(int) - 1] == eos).all()
    assert (out["inputs"][~out["encoder_mask"]] == pad).all()
    sentinel0 = tok.token_id(st.sentinel(0))
    for b in range(B):
        x, y = out["inputs"][b, 1:in_len[b] - 1], out["targets"][b, :int(out_len[b]) - 1]
        if choice[b] == 2:       # S: prefix then suffix, contiguous in the raw row
            joined = np.concatenate([x, y]).tolist()
            raw = tokens[b].tolist()
            start = next(i for i in range(len(raw)) if raw[i:i + len(joined)] == joined)
            assert start + len(joined) <= obj.raw_length and len(y) >= 1
        else:                    # R, X: span corruption of the denoiser's own raw length
            assert y[0] == sentinel0 and (x == sentinel0).sum() == 1
            noise = (y < 60).sum()
            assert (x < 60).sum() + noise == obj.raw_lengths[choice[b]]
    # R (spans of 3 at 15 %) corrupts little, X (spans of 8 at 50 %) a lot
    share = lambda k: (out["weights"][choice == k].sum(1) / out["encoder_mask"][choice == k].sum(1))
    assert share(1).mean() > 2 * share(0).mean()


@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
def test_component_losses_are_the_means_over_each_denoisers_tokens():
    obj, _ = bound(config_lib.load(SMOKE))
    params = obj.init(jax.random.key(0))
    tokens = np.random.default_rng(1).integers(0, 60, (12, obj.raw_length))
    batch = obj.transform({"tokens": tokens}, np.random.default_rng([0, 1]),
                          ctx=BatchContext.single_process(12, step=1))
    loss, metrics = obj.loss_fn(params, batch, None, train=False, frozen={})
    metrics = obj.finalize_metrics(metrics)
    logits = np.asarray(obj.logits(params, batch, None, train=False))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, batch["targets"][..., None], -1)[..., 0]
    w = batch["weights"]
    assert float(loss) == pytest.approx((nll * w).sum() / w.sum(), rel=1e-5)
    for k, name in enumerate(obj.names):
        mine = w * (batch["denoiser"] == k)[:, None]
        if mine.sum():
            assert float(metrics[f"{name}_loss"]) == pytest.approx((nll * mine).sum() / mine.sum(),
                                                                  rel=1e-5)
    assert not any(k.endswith("_share") for k in metrics)


def test_denoiser_config_is_checked():
    c = config_lib.load(SMOKE)
    c.ul2.denoisers = (("q", "span", 3.0, 0.15, 1.0),)
    with pytest.raises(ValueError, match="r/x/s"):
        ul2.UL2.data_request(c)          # asked before the data (and the objective) exist


def smoke(**updates):
    return config_lib.override(config_lib.load(SMOKE), {
        "train.steps": 6, "train.log_every": 1, "train.progress": False, "eval.every": 6,
        "eval.num_batches": 2, "checkpoint.every": 3, "batch_size": 16, "eval.batch_size": 16,
        **updates})


@pytest.fixture(scope="module")
def ul2_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("ul2")
    mesh8 = {"mesh.data": 2, "mesh.fsdp": 2, "mesh.tensor": 2}
    runs = {"one": train.run(smoke(**{"mesh.data": 1}), str(base / "one")),
            "eight": train.run(smoke(**mesh8), str(base / "eight"))}
    assert train.run(smoke(**mesh8), str(base / "killed"), stop_after=4).stopped_early
    runs["resumed"] = train.run(smoke(**mesh8), str(base / "killed"))
    runs["base"] = base
    return runs


def by_step(history, key="train/loss"):
    return {h["step"]: h[key] for h in history if key in h}


@pytest.mark.slow
def test_ul2_logs_each_denoisers_loss_and_eight_devices_equal_one(ul2_runs):
    one, eight = ul2_runs["one"].history, ul2_runs["eight"].history
    for key in ("train/loss", "train/ul2_r_loss", "train/ul2_x_loss", "train/ul2_s_loss"):
        a, b = by_step(one, key), by_step(eight, key)
        assert len(a) >= 4 and sorted(a) == sorted(b), key
        np.testing.assert_allclose([b[s] for s in a], [a[s] for s in a], rtol=2e-5)
    final = one[-1]
    assert all(np.isfinite(final[f"val/ul2_{n}_loss"]) for n in "rxs")


@pytest.mark.slow
def test_ul2_kill_and_resume_is_exact_and_samples(ul2_runs, capsys):
    full, after = by_step(ul2_runs["eight"].history), by_step(ul2_runs["resumed"].history)
    assert sorted(after) == [4, 5, 6] and all(after[s] == full[s] for s in after)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(ul2_runs["resumed"].state.params),
                 jax.device_get(ul2_runs["eight"].state.params))
    capsys.readouterr()
    assert main.cli(["sample", "--workdir", str(ul2_runs["base"] / "one"),
                     "--prompt", "ROMEO: <extra_id_0>", "--max-new-tokens", "8"]) == 0
