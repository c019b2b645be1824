"""Issue 9, "go looking for more of the same kind": a zero, a negative, a wrong type or an unknown
choice in a config field is one ``ConfigError`` naming the field, raised by ``check_values``
before any data is read, and every shipped config passes the same checks. No training here:
each case is a dict lookup, so the whole file runs in about a second."""
import os

import ml_collections
import pytest

from conftest import data_config
from pretrainx.config import check as config_check

from pretrainx.config import load as config_lib

import test_checkpoint_faults
import test_train

GPT = test_checkpoint_faults.tiny_config()
DIGITS = config_lib.load(os.path.join(test_train.ROOT, "configs/diffusion/digits_smoke.py"))


def with_value(config, dotted, value):
    """``config`` with ``dotted`` set to ``value`` whatever its type (as a config file may)."""
    bad = ml_collections.ConfigDict(config.to_dict(), type_safe=False)
    parent, _, leaf = dotted.rpartition(".")
    (bad[parent] if parent else bad)[leaf] = value
    return bad


@pytest.mark.parametrize("config,dotted,value", [
    # the transformer's sizes: num_heads 0 was a ZeroDivisionError, num_layers 0 a model of nothing
    (GPT, "model.num_heads", 0), (GPT, "model.num_layers", 0), (GPT, "model.embed_dim", -32),
    (GPT, "model.vocab_size", 0), (GPT, "model.mlp_ratio", -1.0),
    (GPT, "model.dropout", 1.0), (GPT, "model.attention_dropout", -0.1),
    (GPT, "loss.label_smoothing", 1.0), (GPT, "model.dtype", "fp32"),
    (GPT, "optimizer.b1", 1.0), (GPT, "optimizer.b2", -0.5), (GPT, "optimizer.eps", -1e-8),
    (GPT, "optimizer.end_lr", -1e-4), (GPT, "optimizer.decay_steps", -1),
    (GPT, "optimizer.decay_rate", -0.1), (GPT, "optimizer.lr", "1e-3"),
    (GPT, "train.preemption_check_every", 0), (GPT, "checkpoint.best_mode", "maximum"),
    (GPT, "data.decode_errors", "ignore"), (GPT, "data.val_fraction", 1.0),
    (GPT, "data.max_bytes", -1), (GPT, "sample.temperature", -1.0), (GPT, "sample.top_k", -5),
    (GPT, "batch_size", "64"), (GPT, "seed", -1), (GPT, "eval.num_batches", 2.5),
    # the diffusion runner's: a 0 here fails only at the first eval, after the training
    (DIGITS, "diffusion.cfg_drop", 1.5), (DIGITS, "diffusion.timesteps", 1),
    (DIGITS, "sample.steps", 0), (DIGITS, "sample.batch_size", 0), (DIGITS, "sample.eta", -1.0),
    (DIGITS, "eval.fid_num_samples", -1), (DIGITS, "eval.grid_samples", -4),
    (DIGITS, "model.ch", 0), (DIGITS, "model.norm_groups", 0), (DIGITS, "model.num_classes", -1),
])
def test_a_bad_value_is_one_line_naming_its_field(config, dotted, value):
    with pytest.raises(config_check.ConfigError) as e:
        config_check.check_values(with_value(config, dotted, value))
    assert f"config.{dotted} " in str(e.value) and len(str(e.value).splitlines()) == 1


def test_embed_dim_not_divisible_by_the_heads_is_caught_before_the_model_is_built():
    with pytest.raises(config_check.ConfigError, match=r"config.model.embed_dim \(30\) must be "
                                                       r"divisible by config.model.num_heads \(4\)"):
        config_check.check_values(with_value(with_value(GPT, "model.embed_dim", 30),
                                             "model.num_heads", 4))
    # with an explicit per-head width (T5 v1.1) any width goes
    config_check.check_values(with_value(with_value(with_value(GPT, "model.embed_dim", 30),
                                                    "model.num_heads", 4), "model.head_size", 8))


def test_fields_a_config_does_not_have_are_not_required():
    """A check reads a field only where the config has it: the GPT config has no diffusion
    section, the diffusion config no vocabulary."""
    assert "diffusion" not in GPT and "vocab_size" not in DIGITS.model
    config_check.check_values(GPT)
    config_check.check_values(DIGITS)


@pytest.mark.parametrize("field,value,words", [
    ("path", "", "is ''"),                                # was "data file not found: " (no name)
    ("path", "/no/such/corpus.txt", "data file not found"),
    ("path", "EMPTY", "data file is empty"),
    ("tokenizer", "/no/such/tokenizer.json", "neither a kind"),
    ("tokenizer", "chars", "neither a kind"),             # a typo of "char", read as a path
])
def test_a_missing_or_empty_file_names_its_field(tmp_path, field, value, words):
    from pretrainx.data import build
    (tmp_path / "empty.txt").write_text("")
    data = data_config(**{"kind": "text", "path": "stdlib", "max_bytes": 20000,
                                      "tokenizer": "byte", "val_fraction": 0.1})
    data[field] = str(tmp_path / "empty.txt") if value == "EMPTY" else value
    with pytest.raises((FileNotFoundError, ValueError)) as e:
        build(data, batch_size=2, eval_batch_size=2, seq_len=8, seed=0)
    assert f"config.data.{field}" in str(e.value) and words in str(e.value)


def test_relative_paths_become_absolute_and_names_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tok.json").write_text("{}")
    config = ml_collections.ConfigDict({
        "data": {"path": "corpus.txt", "tokenizer": "tok.json"},
        "init_from": {"workdir": "runs/base", "also": {"reward": {"workdir": "runs/rm"},
                                                       "none": {"workdir": ""}}}})
    got = config_check.resolve_paths(config)
    assert got.data.path == str(tmp_path / "corpus.txt")
    assert got.data.tokenizer == str(tmp_path / "tok.json")           # a saved tokenizer's file
    assert got.init_from.workdir == str(tmp_path / "runs/base")
    assert got.init_from.also.reward.workdir == str(tmp_path / "runs/rm")   # every run it loads
    assert got.init_from.also.none.workdir == ""
    assert config.data.path == "corpus.txt"                           # the caller's is untouched
    names = ml_collections.ConfigDict({"data": {"path": "stdlib", "tokenizer": "char"}})
    assert config_check.resolve_paths(names).to_dict() == names.to_dict()
