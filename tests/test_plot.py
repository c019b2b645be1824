"""``pretrainx plot``: two real runs' train and val curves in one PNG, axes labelled, the curves
holding exactly the logged numbers; a missing metric is a one-line error."""
import os

import numpy as np
import pytest
from PIL import Image

from pretrainx import main

from pretrainx.config import load as config_lib

from pretrainx.tools import plot

from pretrainx.run import rundir

from pretrainx.core import train

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
# A tiny byte-level GPT on the standard library's source (real text, no data file needed).
TINY = {"data.path": "stdlib", "data.max_bytes": 200000, "data.tokenizer": "byte",
        "model.vocab_size": 256, "model.num_layers": 1, "model.embed_dim": 32, "model.num_heads": 2,
        "model.max_len": 32, "data.seq_len": 32, "batch_size": 16, "eval.batch_size": 16,
        "eval.every": 10, "eval.num_batches": 2, "train.steps": 30, "train.log_every": 5,
        "checkpoint.every": 30, "train.progress": False, "optimizer.warmup_steps": 3,
        "optimizer.decay_steps": 30, "mesh.data": 1}   # one device: compiles in ~1 s


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = config_lib.override(
        config_lib.load(os.path.join(ROOT, "configs/gpt/shakespeare_char.py:smoke")), TINY)
    runs = []
    for name, lr in (("lr_1e-3", 1e-3), ("lr_1e-2", 1e-2)):
        workdir = str(tmp_path_factory.mktemp("runs") / name)
        train.run(config_lib.override(base, {"optimizer.lr": lr}), workdir)
        runs.append(workdir)
    return runs


@pytest.mark.slow
def test_plot_writes_one_png_for_two_runs(two_runs, tmp_path, capsys):
    out = str(tmp_path / "compare.png")
    assert main.cli(["plot", *two_runs, "--out", out]) == 0
    assert out in capsys.readouterr().out
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (1320, 528)
        pixels = np.asarray(img.convert("L"))
    assert pixels.std() > 10   # not a blank canvas


@pytest.mark.slow
def test_plot_axes_are_labelled_and_hold_the_logged_curves(two_runs):
    fig = plot.compare_figure(two_runs, log_x=True)
    ax_train, ax_val = fig.axes
    assert (ax_train.get_xlabel(), ax_train.get_ylabel()) == ("step (log scale)", "train/loss")
    assert (ax_val.get_xlabel(), ax_val.get_ylabel()) == ("step (log scale)", "val/loss")
    assert ax_train.get_xscale() == ax_val.get_xscale() == "log"
    legend = [t.get_text() for t in ax_val.get_legend().get_texts()]
    assert len(legend) == 2 and legend[0].startswith("lr_1e-3 (best ")
    for ax, key in ((ax_train, "train/loss"), (ax_val, "val/loss")):
        lines = [l for l in ax.get_lines() if len(l.get_xdata()) > 1]   # not the best-point marks
        assert len(lines) == 2
        for line, workdir in zip(lines, two_runs):
            steps, values = rundir.curve(rundir.read_rows(workdir), key)
            assert list(line.get_xdata()) == steps and np.allclose(line.get_ydata(), values)
    assert len(rundir.curve(rundir.read_rows(two_runs[0]), "val/loss")[0]) == 3


@pytest.mark.slow
def test_plot_of_a_metric_no_run_logged_is_a_one_line_error(two_runs, tmp_path, capsys):
    code = main.cli(["plot", *two_runs, "--metric", "eval/fid", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no run logged 'eval/fid'" in err, err
