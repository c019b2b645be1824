"""The ``shards`` data kind: memory-mapped windows equal the concatenated shards, a batch is a
pure function of (seed, index), processes split rows, bad folders are one-line errors naming the
file, and a clm run on shards resumes bit for bit."""
import json
import os
import shutil

import numpy as np
import pytest

from conftest import SHARED_DATA, data_config
from pretrainx import data
from pretrainx.config import load as config_lib
from pretrainx.config import text as text_presets
from pretrainx.data import shards, subword
from pretrainx.tools import tokenize_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAKESPEARE = os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt")


def make_shards(tmp, tokenizer, source, shard_mb="0.02"):
    out = tmp / "shards"
    args = tokenize_corpus._parser().parse_args(
        [source, "--tokenizer", tokenizer, "--out", str(out), "--shard-mb", shard_mb,
         "--val-fraction", "0.05"])
    tokenize_corpus.tokenize(args)
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    with open(SHAKESPEARE, encoding="utf-8") as f:
        text = f.read()[:300_000]
    (tmp / "corpus.txt").write_text(text, encoding="utf-8")
    subword.train_from_texts([text], "bpe", 500).save(str(tmp / "tok"))
    return make_shards(tmp, str(tmp / "tok"), str(tmp / "corpus.txt"))


def build(folder, **fields):
    config = data_config(kind="shards", path=str(folder), seq_len=64, **fields)
    return data.build(config, batch_size=8, eval_batch_size=4, seq_len=64, seed=3)


def all_tokens(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    return manifest, np.concatenate([np.load(folder / f"{s['name']}.tokens.npy")
                                     for s in manifest["shards"]])


def test_windows_are_slices_of_the_concatenated_shards(folder):
    manifest, tokens = all_tokens(folder)
    assert len(manifest["shards"]) >= 8
    dataset = build(folder)
    cut = manifest["split"]["train_tokens"]
    assert dataset.info["train_tokens"] == cut and dataset.info["val_tokens"] == len(tokens) - cut
    for index in range(40):
        batch = dataset.train.get_batch(index)
        starts = dataset.train.starts(index)
        windows = tokens[:cut][starts[:, None] + np.arange(65)].astype(np.int32)
        np.testing.assert_array_equal(batch["inputs"], windows[:, :-1])
        np.testing.assert_array_equal(batch["targets"], windows[:, 1:])
    # windows across a shard's end, and across a whole shard
    stream = shards.open_shards(str(folder), manifest)
    for end in np.cumsum([s["tokens"] for s in manifest["shards"]])[:-1]:
        np.testing.assert_array_equal(stream.read(end - 10, 20), tokens[end - 10:end + 10])
    size = manifest["shards"][1]["tokens"]
    np.testing.assert_array_equal(stream.slice(5, len(tokens)).read(10, size + 300),
                                  tokens[15:15 + size + 300])
    val = dataset.val.get_batch(0)
    starts = dataset.val.starts(0)
    np.testing.assert_array_equal(val["inputs"], tokens[cut:][starts[:, None] + np.arange(64)])


def test_a_batch_is_a_function_of_seed_and_index_and_processes_split_rows(folder):
    first, again = build(folder).train, build(folder).train
    for index in (0, 5, 1000):
        whole = first.get_batch(index)
        np.testing.assert_array_equal(whole["inputs"], again.get_batch(index)["inputs"])
        halves = [first.get_batch(index, shard=(p, 2))["inputs"] for p in range(2)]
        np.testing.assert_array_equal(np.concatenate(halves), whole["inputs"])
    assert not np.array_equal(first.get_batch(0)["inputs"], first.get_batch(1)["inputs"])


def test_raw_token_rows_for_objectives_that_build_their_own_inputs(folder):
    config = data_config(kind="shards", path=str(folder), seq_len=64)
    dataset = data.build(config, batch_size=8, eval_batch_size=4, seq_len=64, seed=3,
                         fields=(data.TOKENS,))
    assert dataset.train.get_batch(0)[data.TOKENS].shape == (8, 64)


def test_another_tokenizer_than_the_shards_is_refused_naming_the_manifest(folder, tmp_path):
    other = subword.train_from_texts(["some other text entirely " * 50], "bpe", 500)
    other.save(str(tmp_path / "other"))
    with pytest.raises(shards.ShardsError) as e:
        build(folder, tokenizer=str(tmp_path / "other"))
    assert str(folder / "manifest.json") in str(e.value) and "another tokenizer" in str(e.value)
    config = data_config(kind="shards", path=str(folder), seq_len=64)
    with pytest.raises(shards.ShardsError, match="another tokenizer"):   # a resumed run's
        data.build(config, batch_size=8, eval_batch_size=4, seq_len=64, seed=3, tokenizer=other)
    assert build(folder, tokenizer=str(folder)).tokenizer.vocab_size == 500   # the same one


def damaged_copy(folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    return copy


def test_a_manifest_that_does_not_match_its_shards_is_one_line_naming_the_file(folder, tmp_path):
    copy = damaged_copy(folder, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["shards"][1]["tokens"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(shards.ShardsError) as e:
        build(copy)
    assert str(copy / "shard_00001.tokens.npy") in str(e.value) and "\n" not in str(e.value)
    shard = copy / "shard_00002.tokens.npy"
    shard.write_bytes(shard.read_bytes()[:-100])             # a shard cut short
    manifest["shards"][1]["tokens"] -= 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(shards.ShardsError, match=str(shard)):
        build(copy)
    (copy / "manifest.json").unlink()                          # an unfinished folder
    with pytest.raises(shards.ShardsError, match="no manifest.json"):
        build(copy)


def test_val_bytes_come_from_the_manifest_and_an_older_folder_is_decoded_once(
        folder, tmp_path, caplog, monkeypatch):
    """bits per byte (``val_tokens`` and ``val_bytes`` of the info) is the same whether the bytes
    were recorded by ``tokenize`` or decoded at start for a folder from before the field."""
    manifest = json.loads((folder / "manifest.json").read_text())
    decoded = []
    monkeypatch.setattr(shards.readers, "decoded_bytes",
                        lambda *a, real=shards.readers.decoded_bytes: decoded.append(1) or real(*a))
    recorded = build(folder).info
    assert recorded["val_bytes"] == manifest["split"]["val_bytes"] > 0 and not decoded
    old = damaged_copy(folder, tmp_path)
    for key in ("val_bytes", "train_bytes"):
        del manifest["split"][key]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level("INFO", logger=shards.__name__):
        first, again = build(old).info, build(old).info
    assert len(decoded) == 2
    assert first["val_bytes"] == again["val_bytes"] == recorded["val_bytes"]
    assert first["val_tokens"] == recorded["val_tokens"]
    lines = [r.getMessage() for r in caplog.records if "predates split.val_bytes" in r.getMessage()]
    assert len(lines) == 1 and str(old) in lines[0]


@pytest.mark.slow
def test_clm_on_shards_resumes_bit_for_bit(tmp_path):
    from resume_check import assert_kill_and_resume_is_exact
    (tmp_path / "corpus.txt").write_text(open(SHAKESPEARE, encoding="utf-8").read()[:100_000])
    folder = make_shards(tmp_path, "byte", str(tmp_path / "corpus.txt"), shard_mb="0.01")
    cfg = config_lib.load(os.path.join(ROOT, "configs/gpt/shakespeare_char.py:smoke"))
    cfg = config_lib.override(cfg, {
        "model.vocab_size": 256, "model.num_layers": 2, "model.num_heads": 4,
        "model.embed_dim": 32, "model.max_len": 32, "batch_size": 16, "eval.batch_size": 16,
        "train.steps": 6, "train.log_every": 1, "train.progress": False, "eval.every": 3,
        "checkpoint.every": 2, "optimizer.warmup_steps": 2, "optimizer.decay_steps": 6})
    with cfg.unlocked():
        cfg.data = text_presets.shards_data(str(folder), seq_len=32)
    full, _ = assert_kill_and_resume_is_exact(cfg, tmp_path, kill_after=3)
    assert any("val/loss" in h for h in full.history)


@pytest.mark.parametrize("recipe", ["gpt/shakespeare_char.py:smoke", "bert/bert_base.py:smoke",
                                    "t5/t5_small.py:smoke", "ul2/prefix_lm_char.py:smoke",
                                    "ul2/ul2_small.py:smoke", "ul2/clm_mlm_char.py:smoke"])
def test_every_text_objective_takes_its_batches_from_shards(folder, recipe):
    from pretrainx import objectives
    from pretrainx.config import defaults
    from pretrainx.core import train
    from pretrainx.core.batches import host_batch
    cfg = config_lib.load(os.path.join(ROOT, "configs", recipe))
    cfg = defaults.with_defaults(config_lib.override(cfg, {"model.vocab_size": 640}))
    with cfg.unlocked():
        cfg.data = text_presets.shards_data(str(folder), seq_len=cfg.data.seq_len)
    cls = objectives.get(cfg.objective)
    dataset = train.build_dataset(cfg, cls)
    objective = cls(cfg, cls.data_spec(cfg, dataset))
    fields = cls.data_request(cfg).fields
    batch = host_batch(dataset.train, objective, 7, cfg.seed, total_steps=10, fields=fields)
    objective.check_batch(batch)
    assert dataset.tokenizer.vocab_size <= 640 and dataset.val is not None


def document_offsets(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    bounds = np.cumsum([0] + [s["tokens"] for s in manifest["shards"]])
    return np.unique(np.concatenate([np.load(folder / f"{s['name']}.docs.npy") + base
                                     for s, base in zip(manifest["shards"], bounds)]))


def test_concat_packing_cuts_the_same_windows_where_documents_begin(folder):
    _, tokens = all_tokens(folder)
    starts_of_documents = document_offsets(folder)
    stream, packed = build(folder).train, build(folder, packing="concat").train
    for index in range(10):
        batch, plain = packed.get_batch(index), stream.get_batch(index)
        np.testing.assert_array_equal(batch["inputs"], plain["inputs"])
        for row, start in enumerate(stream.starts(index)):
            # document number of each of the 65 slots, counted from the window's first
            slot = start + np.arange(65)
            doc = np.searchsorted(starts_of_documents, slot, side="right")
            np.testing.assert_array_equal(batch["segment_ids"][row], doc[:-1] - doc[0] + 1)
            same = doc[1:] == doc[:-1]           # the target is the same document's next token
            np.testing.assert_array_equal(batch["weights"][row], same.astype(np.float32))
            np.testing.assert_array_equal(batch["targets"][row][same], tokens[slot[1:]][same])
            first = starts_of_documents[np.searchsorted(starts_of_documents, slot[:-1], "right") - 1]
            expected = slot[:-1] - np.maximum(first, start)   # restarts at 0 in the window
            np.testing.assert_array_equal(batch["positions"][row], expected)
    assert any(len(set(packed.get_batch(i)["segment_ids"][0])) > 1 for i in range(10))
    halves = [packed.get_batch(3, shard=(p, 2))["segment_ids"] for p in range(2)]
    np.testing.assert_array_equal(np.concatenate(halves), packed.get_batch(3)["segment_ids"])


@pytest.mark.parametrize("recipe", ["gpt/shakespeare_char.py:smoke", "bert/bert_base.py:smoke"])
def test_packed_rows_on_shards_feed_clm_and_mlm(folder, recipe):
    from pretrainx import objectives
    from pretrainx.config import defaults
    from pretrainx.core import train
    from pretrainx.core.batches import host_batch
    cfg = config_lib.load(os.path.join(ROOT, "configs", recipe))
    cfg = defaults.with_defaults(config_lib.override(cfg, {"model.vocab_size": 640}))
    with cfg.unlocked():
        cfg.data = text_presets.shards_data(str(folder), seq_len=cfg.data.seq_len)
        cfg.data.packing = "concat"
    cls = objectives.get(cfg.objective)
    dataset = train.build_dataset(cfg, cls)
    objective = cls(cfg, cls.data_spec(cfg, dataset))
    batch = host_batch(dataset.train, objective, 7, cfg.seed, total_steps=10,
                       fields=cls.data_request(cfg).fields)
    objective.check_batch(batch)
    assert "segment_ids" in batch and dataset.info["packing"] == "concat"
