"""Every config file loads; every ``:smoke`` variant trains a few steps through the runner; the
shakespeare smoke run learns well past the unigram (3.35) and bigram (2.48) baselines."""
import glob
import os

import pytest

from pretrainx.config import check as config_check

from pretrainx.config import load as config_lib, variants as config_variants

from pretrainx.core import train
from conftest import SHARED_DATA
from pretrainx.data import special_tokens as st

# objectives whose evals write a text sample: a continuation (clm), or a prompt whose blanks
# (masks, sentinels) the sample shows filled in
TEXT_SAMPLES = {"clm", "mlm", "span_corruption", "ul2", "prefix_lm", "clm_mlm"}
FILLED = TEXT_SAMPLES - {"clm"}    # a clm may continue with a sentinel its BPE vocabulary holds

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.py"),
                                                              recursive=True))
NEEDS_SHARED = ("shakespeare", "packed_wikitext", "fashion_mnist", "cifar10", "hh_reward")


def variants(path):
    out = [""]
    try:
        config_lib.load(os.path.join(ROOT, path) + ":smoke")
        out.append("smoke")
    except ValueError:
        pass
    return out


@pytest.mark.parametrize("path", CONFIGS)
def test_config_loads_and_rejects_unknown_variants(path):
    for v in variants(path):
        c = config_lib.load(os.path.join(ROOT, path) + (f":{v}" if v else ""))
        assert c.objective and c.batch_size > 0 and c.train.steps > 0
        config_check.check_values(c)        # no shipped config trips the start-up checks
    with pytest.raises(ValueError, match="unknown variant"):
        config_lib.load(os.path.join(ROOT, path) + ":no_such_variant")


SMOKES = [p for p in CONFIGS if "smoke" in variants(p)]


def test_variant_flags_compose_in_any_order_and_an_unknown_one_names_the_known():
    known = ("smoke", "flow", "flow,smoke")
    assert config_variants.parse("smoke,flow", "x/digits.py", *known) == {"flow", "smoke"}
    assert config_variants.parse("", "x/digits.py", *known) == frozenset()
    with pytest.raises(ValueError, match=r"unknown variant 'cond' of digits \(known: smoke, flow, flow,smoke\)"):
        config_variants.parse("cond", "x/digits.py", *known)
    dit = os.path.join(ROOT, "configs/diffusion/fashion_mnist_dit.py")
    assert (config_lib.load(dit + ":smoke,flow").to_dict() == config_lib.load(dit + ":flow,smoke").to_dict())
    assert config_lib.load(dit + ":flow,smoke").objective == "flow"


def test_every_smoke_variant_is_cpu_sized():
    """``:smoke`` is always the small standalone run: no init_from parent, float32, short."""
    for path in SMOKES:
        c = config_lib.load(os.path.join(ROOT, path) + ":smoke")
        assert c.train.steps <= 400 and c.batch_size <= 64, path
        assert c.model.dtype == "float32" and not c.init_from.workdir, path


def test_command_line_overrides_parse_literals_and_keep_text():
    assert config_lib.parse_overrides(["train.steps=10", "model.dtype=bfloat16", "a.b=(1, 2)",
                                       "lr=3e-4", "flag=True"]) == {
        "train.steps": 10, "model.dtype": "bfloat16", "a.b": (1, 2), "lr": 3e-4, "flag": True}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        config_lib.parse_overrides(["train.steps"])


@pytest.mark.slow
@pytest.mark.parametrize("path", SMOKES)
def test_smoke_config_trains_through_the_runner(path, tmp_path):
    if any(k in path for k in NEEDS_SHARED) and not os.path.isdir(SHARED_DATA):
        pytest.skip(f"{path} reads ../shared/data, which is absent")
    c = config_lib.load(os.path.join(ROOT, path) + ":smoke")
    # One device, as the CLI on a CPU: the sharded paths have their own tests (test_train.py).
    c = config_lib.override(c, {"train.steps": 3, "train.progress": False, "eval.every": 3,
                                "eval.num_batches": 1, "checkpoint.every": 3, "mesh.data": 1})
    result = train.run(c, str(tmp_path))
    assert int(result.state.step) == 3
    assert any("val/loss" in h or any(k.startswith("eval/") for k in h) for h in result.history)
    assert os.path.isdir(tmp_path / "checkpoints" / "3")
    if c.objective in TEXT_SAMPLES:     # the eval wrote its text sample, its blanks filled in
        shown = (tmp_path / "samples" / "step_000003.txt").read_text().split("\n\n")[0]
        assert shown.strip(), shown
        if c.objective in FILLED:
            assert st.MASK not in shown and "<extra_id_" not in shown, shown


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="../shared/data (Tiny Shakespeare) absent")
def test_shakespeare_smoke_beats_the_bigram(tmp_path):
    c = config_lib.load(os.path.join(ROOT, "configs/gpt/shakespeare_char.py:smoke"))
    c = config_lib.override(c, {"train.progress": False, "mesh.data": 1})
    result = train.run(c, str(tmp_path))
    val = [h["val/loss"] for h in result.history if "val/loss" in h]
    assert val[-1] < 2.3, val      # unigram 3.35, bigram 2.48 nats/char on the same split
    for name in ("config.json", "metrics.jsonl", "tensorboard", "checkpoints", "samples"):
        assert os.path.exists(tmp_path / name), name
