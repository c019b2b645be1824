"""The speaker task (parsing, a fixed split by speech) and the classify objective: BERT's pooled
[CLS] or GPT's last real token under a new head, and fine-tuning through init_from (the parent's
encoder loaded, its MLM head dropped)."""
import os

import jax
import numpy as np
import pytest

from pretrainx.config import load as config_lib

from pretrainx.core import train
from pretrainx.data import speeches
from pretrainx.objectives import classify
from resume_check import assert_kill_and_resume_is_exact, train_losses

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
FINETUNE = os.path.join(ROOT, "configs/finetune/speakers_bert.py")
PLAY = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?
Is't a verdict?

A stage direction without a speaker
"""


def test_speeches_are_whole_turns():
    assert speeches.parse_speeches(PLAY) == [
        ("First Citizen", "Before we proceed any further, hear me speak."),
        ("All", "Speak, speak."),
        ("First Citizen", "You are all resolved rather to die than to famish?\nIs't a verdict?")]


def test_speaker_task_split_is_fixed_and_by_speech():
    text = "".join(f"S{i % 4}:\nline {i} of speaker {i % 4}\n\n" for i in range(200)) + \
        "".join(f"RARE{i}:\nonce\n\n" for i in range(5))
    train_a, val_a, names = speeches.speaker_task(text, top_speakers=3, val_fraction=0.25)
    train_b, val_b, _ = speeches.speaker_task(text, top_speakers=3, val_fraction=0.25)
    assert names == ["S0", "S1", "S2"] and train_a == train_b and val_a == val_b
    assert len(val_a) == 38 and len(train_a) == 150 - 38
    assert not {s for s, _ in train_a} & {s for s, _ in val_a}
    assert all(s.endswith(f"speaker {names[y][1]}") for s, y in train_a + val_a)


def tiny(arch, pooling="default"):
    c = config_lib.load(FINETUNE + ":smoke")
    c.model.arch = arch
    c.classify.pooling = pooling
    c.data.seq_len = 16
    c.model.max_len = 16
    return classify.Classify(c)


@pytest.mark.slow
@pytest.mark.parametrize("arch,pooling", [("bert", "default"), ("gpt", "default"),
                                          ("bert", "mean")])
def test_padding_does_not_change_the_class_logits(arch, pooling):
    obj = tiny(arch, pooling)
    params = obj.init(jax.random.key(0))
    tokens = np.random.default_rng(0).integers(0, 65, (2, 16)).astype(np.int32)
    mask = np.ones((2, 16), np.int32)
    mask[:, 9:] = 0
    other = tokens.copy()
    other[:, 9:] = 3
    a = obj.logits(params, {"tokens": tokens, "input_mask": mask}, None, train=False)
    b = obj.logits(params, {"tokens": other, "input_mask": mask}, None, train=False)
    assert a.shape == (2, 10)
    np.testing.assert_allclose(a, b, atol=1e-5)
    changed = tokens.copy()
    changed[:, 8] = (changed[:, 8] + 1) % 65                 # the last real token matters
    c = obj.logits(params, {"tokens": changed, "input_mask": mask}, None, train=False)
    assert np.abs(np.asarray(c) - np.asarray(a)).max() > 1e-4


def test_adapt_init_from_drops_the_mlm_head():
    obj = tiny("bert")
    target = {"params": jax.eval_shape(obj.init, jax.random.key(0))}
    source = {"params": {"wte": 1, "h_0": 2, "mlm_bias": 3, "mlm_transform": 4}}
    assert set(obj.adapt_init_from(source, target)["params"]) == {"wte", "h_0"}


@pytest.mark.slow
def test_fine_tuning_loads_the_pretrained_encoder(tmp_path):
    parent = config_lib.override(config_lib.load(os.path.join(ROOT, "configs/bert/bert_base.py:smoke")), {
        "train.steps": 3, "train.progress": False, "eval.every": 0, "checkpoint.every": 3,
        "data.seq_len": 128, "model.max_len": 128, "mesh.data": 1})
    train.run(parent, str(tmp_path / "parent"))
    child = config_lib.override(config_lib.load(FINETUNE + ":smoke"), {
        "train.steps": 1, "train.progress": False, "eval.every": 1, "checkpoint.every": 1,
        "optimizer.lr": 0.0, "init_from.workdir": str(tmp_path / "parent"),
        "data.tokenizer": str(tmp_path / "parent"), "mesh.data": 1})
    result = train.run(child, str(tmp_path / "child"))
    got = jax.device_get(result.state.params)
    restored = ckpt_lib_params(tmp_path / "parent")
    np.testing.assert_array_equal(got["backbone"]["h_0"]["attn"]["query"]["kernel"],
                                  restored["h_0"]["attn"]["query"]["kernel"])
    assert "mlm_bias" not in got["backbone"] and "pooler" in got["backbone"]
    assert 0.0 <= result.history[-1]["val/accuracy"] <= 1.0


def ckpt_lib_params(workdir):
    from pretrainx.core import init_from
    return init_from.read_source(init_from.InitFrom(str(workdir)))[0]["params"]


def test_pretraining_text_leaves_the_held_out_speeches_out():
    text = "".join(f"S{i % 4}:\nline {i} of speaker {i % 4}\n\n" for i in range(200))
    _, val, _ = speeches.speaker_task(text, top_speakers=3, val_fraction=0.25)
    rest = speeches.text_without_held_out(text, top_speakers=3, val_fraction=0.25)
    assert all(speech not in rest for speech, _ in val)
    kept = speeches.parse_speeches(rest)
    assert len(kept) == 200 - len(val) and "S3" in {s for s, _ in kept}


@pytest.mark.slow
def test_classify_kill_and_resume_is_exact(tmp_path):
    """Fine-tuning resumes exactly: the parent is loaded at the start, the killed run's own
    checkpoint wins on the rerun, and the shuffled speech batches and dropout are functions of
    (seed, step), so steps 4-6 replay with the same losses and the same parameters."""
    parent = config_lib.override(config_lib.load(os.path.join(ROOT, "configs/bert/bert_base.py:smoke")), {
        "train.steps": 2, "train.progress": False, "eval.every": 0, "checkpoint.every": 2,
        "data.seq_len": 128, "model.max_len": 128, "mesh.data": 1})
    train.run(parent, str(tmp_path / "parent"))
    child = config_lib.override(config_lib.load(FINETUNE + ":smoke"), {
        "train.steps": 6, "train.log_every": 1, "train.progress": False, "eval.every": 0,
        "checkpoint.every": 3, "batch_size": 8, "optimizer.warmup_steps": 2,
        "init_from.workdir": str(tmp_path / "parent"), "data.tokenizer": str(tmp_path / "parent"),
        "mesh.data": 1})
    full, _ = assert_kill_and_resume_is_exact(child, tmp_path, kill_after=4)
    assert len(set(train_losses(full.history).values())) == 6
