"""A new user's first hour (#25): ``pretrainx plot`` writes beside the runs, not into the current
folder; ``pretrainx pairs`` samples past the context through the sliding window; a plain
``pretrainx sample`` prints no warning and continues as long as asked; training on CPU prints
no ``mfu=n/a``."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx import main
from pretrainx.errors import UserError
from pretrainx.models.gpt import GPT
from pretrainx.models.transformer import TransformerConfig
from pretrainx.tools import plot, synthetic_prefs

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))


def _fake_run(workdir, losses):
    """A run folder holding just a metrics.jsonl: all ``plot`` reads."""
    os.makedirs(workdir)
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        for step, loss in enumerate(losses, 1):
            f.write(json.dumps({"step": step * 10, "train/loss": loss, "val/loss": loss + .1}) + "\n")
    return str(workdir)


def test_plot_writes_beside_the_runs_or_where_out_says(tmp_path, monkeypatch, capsys):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    a = _fake_run(tmp_path / "sweep" / "trials" / "000", [3.0, 2.5, 2.2])
    b = _fake_run(tmp_path / "sweep" / "trials" / "001", [3.1, 2.7, 2.0])
    assert main.cli(["plot", a, b]) == 0
    assert os.path.isfile(tmp_path / "sweep" / "trials" / "curves.png")
    assert main.cli(["plot", a]) == 0
    assert os.path.isfile(os.path.join(a, "plots", "curves.png"))
    assert os.listdir(cwd) == []                      # nothing written where the user stands
    assert main.cli(["plot", a, b, "--out", str(tmp_path / "here.png")]) == 0
    assert os.path.isfile(tmp_path / "here.png")
    assert "wrote " in capsys.readouterr().out
    assert plot.default_out([a, os.path.join(a, "child")]) == os.path.join(
        os.path.abspath(a), "plots", "curves.png")
    with pytest.raises(UserError, match="--out"):
        plot.default_out(["/one", "/two"])


def test_pairs_sample_past_the_context_with_the_sliding_window():
    """``pretrainx pairs`` prompts of 6 tokens + 20 new on a context of 8: the response (greedy
    here) is what a loop that crops the text to the last 8 tokens and runs the model gives."""
    L = 8
    cfg = TransformerConfig(vocab_size=19, num_layers=1, num_heads=2, embed_dim=16, max_len=L)
    params = GPT(cfg).init(jax.random.key(3), jnp.zeros((1, L), jnp.int32))["params"]
    prompts = np.random.RandomState(0).randint(0, 19, (3, 6)).astype(np.int32)
    out = synthetic_prefs.sample_responses(cfg, params, prompts, max_new_tokens=20, seed=0,
                                           temperature=0.0)
    assert out.shape == (3, 20)
    forward = jax.jit(lambda x: GPT(cfg).apply({"params": params}, x))
    for prompt, response in zip(prompts, out):
        ids = prompt.tolist()
        for _ in range(20):
            window = ids[-L:]       # right-padded to L: one compile; causal rows never see it
            logits = forward(jnp.asarray([window + [0] * (L - len(window))]))
            ids.append(int(np.argmax(np.asarray(logits)[0, len(window) - 1])))
        assert response.tolist() == ids[6:]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pretrainx.main", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "PYTHONPATH": ROOT})


@pytest.mark.slow
def test_train_then_plain_sample_prints_no_warning_and_runs_past_the_context(tmp_path):
    workdir = str(tmp_path / "run")
    trained = _cli("train", "--config", "configs/gpt/shakespeare_char.py:smoke",
                   "--workdir", workdir, "--config.data.path=stdlib",
                   "--config.data.max_bytes=100000", "--config.train.steps=10",
                   "--config.eval.every=10", "--config.eval.num_batches=1",
                   "--config.model.embed_dim=32", "--config.model.max_len=32",
                   "--config.model.vocab_size=128",
                   "--config.data.seq_len=32", "--config.mesh.data=1")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "mfu" not in trained.stderr and "tok/s=" in trained.stderr    # no peak FLOP/s on CPU
    sampled = _cli("sample", "--workdir", workdir, "--prompt", "ROMEO:", "--max-new-tokens", "96")
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    assert "WARNING" not in sampled.stderr and "warn" not in sampled.stderr.lower(), sampled.stderr
    text = sampled.stdout[:-1]          # print's newline
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 96   # 3x the context, 1 char a token


def test_fid_classifier_shows_progress_reports_accuracy_and_keys_its_cache_by_network(
        tmp_path, capfd):
    from conftest import data_config
    from pretrainx.data.images import load_image_arrays
    from pretrainx.evaluators import fid, fid_classifier
    arrays = load_image_arrays(data_config(kind="digits", heldout_fraction=0.1))
    # the pre-#25 network keeps its cache names (its cached files stay valid); the new one differs
    assert fid_classifier.cache_tag(arrays, 0, 1500, "classifier") == "8x8x1-seed0-steps1500"
    assert fid_classifier.cache_tag(arrays, 0, 1500, "classifier_fast") != "8x8x1-seed0-steps1500"
    protocol = fid.FidProtocol(num_samples=180, num_reference=0, classifier_steps=20)
    assert protocol.extractor == "classifier_fast"      # the default, as in the image presets
    extractor = fid.make_extractor(arrays, str(tmp_path), protocol)
    err = capfd.readouterr().err
    assert "fid: classifier_fast on digits" in err and "20/20" in err      # the progress bar
    assert "held-out accuracy" in err and "on 180 images" in err
    assert extractor.name == "classifier-8x8x1-seed0-steps20-classifier_fast"
    [report] = [f for f in os.listdir(tmp_path) if f.endswith(".json")]
    with open(tmp_path / report) as f:
        assert 0.0 <= json.load(f)["heldout_accuracy"] <= 1.0
