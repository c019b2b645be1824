"""Array, window and document sources: determinism, sharding, exact resume, and the builders."""
import gzip
import json
import os

import numpy as np
import pytest

from conftest import SHARED_DATA, data_config
from pretrainx.data import base, readers, sources

HH = os.path.join(SHARED_DATA, "hh-rlhf", "harmless-base-test.jsonl.gz")
SHAKESPEARE = os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt")


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _resume_matches(make_source, n_before=5, n_after=7):
    """Stop after N batches, rebuild from the checkpointed DataState, continue: same batches."""
    uninterrupted = make_source()
    expected = [uninterrupted.get_batch(i) for i in range(n_before + n_after)]
    first = make_source()
    state = base.DataState()
    for _ in range(n_before):
        first.get_batch(state.next_index)
        state.next_index += 1
    restored = base.DataState.from_json(json.loads(json.dumps(state.to_json())))
    second = make_source()                      # a fresh process after restart
    got = [second.get_batch(restored.next_index + i) for i in range(n_after)]
    return all(_same(e, g) for e, g in zip(expected[n_before:], got))


def test_array_source_epochs_are_permutations():
    x = np.arange(10)
    src = sources.ArraySource({"x": x, "y": x * 2}, batch_size=3, seed=7)
    assert src.steps_per_epoch == 3
    epoch0 = np.concatenate([src.get_batch(i)["x"] for i in range(3)])
    assert len(set(epoch0)) == 9                                  # drop_remainder: 9 of 10
    expected = np.random.default_rng([7, 0]).permutation(10)[:9]
    assert np.array_equal(epoch0, expected)
    epoch1 = np.concatenate([src.get_batch(i)["x"] for i in range(3, 6)])
    assert not np.array_equal(epoch0, epoch1)
    b = src.get_batch(4)
    assert np.array_equal(b["y"], b["x"] * 2)


def test_array_source_keep_remainder_and_no_shuffle():
    src = sources.ArraySource({"x": np.arange(5)}, batch_size=2, shuffle=False,
                              drop_remainder=False)
    assert [src.get_batch(i)["x"].tolist() for i in range(4)] == [[0, 1], [2, 3], [4, 0], [0, 1]]


def test_array_source_shards_partition_the_global_batch():
    images = np.random.default_rng(0).integers(0, 255, (64, 4, 4, 3), dtype=np.uint8)
    src = sources.ArraySource({"image": images, "label": np.arange(64)}, batch_size=8, seed=1)
    whole = src.get_batch(11)
    parts = [src.get_batch(11, shard=(p, 4)) for p in range(4)]
    assert np.array_equal(np.concatenate([p["image"] for p in parts]), whole["image"])
    assert parts[0]["image"].shape == (2, 4, 4, 3)


def test_array_source_resume_is_exact():
    data = {"x": np.arange(50), "z": np.arange(50) ** 2}
    assert _resume_matches(lambda: sources.ArraySource(data, batch_size=4, seed=3), 11, 9)


@pytest.mark.parametrize("sampling", ["random", "sequential"])
def test_token_windows_shift_and_resume(sampling):
    tokens = np.arange(1000) % 97
    make = lambda: sources.TokenWindows(tokens, batch_size=4, seq_len=16, seed=5,  # noqa: E731
                                        sampling=sampling)
    b = make().get_batch(2)
    assert b["inputs"].shape == (4, 16) and b["inputs"].dtype == np.int32
    assert np.array_equal(b["inputs"][:, 1:], b["targets"][:, :-1])
    assert _resume_matches(make)
    whole = make().get_batch(9)
    halves = [make().get_batch(9, shard=(p, 2)) for p in range(2)]
    assert np.array_equal(np.concatenate([h["inputs"] for h in halves]), whole["inputs"])


def test_numpy_builder_stream_rows_and_npz(tmp_path):
    stream = tmp_path / "ids.npy"
    np.save(stream, (np.arange(5000) % 50).astype(np.uint16))
    cfg = data_config(**{"kind": "numpy", "path": str(stream), "val_fraction": 0.1,
                                     "sampling": "random"})
    ds = base.build(cfg, batch_size=4, eval_batch_size=2, seq_len=32, seed=0)
    assert ds.info["train_tokens"] == 4500 and ds.val.get_batch(0)["inputs"].shape == (2, 32)
    rows = tmp_path / "rows.npy"
    np.save(rows, np.arange(20 * 9).reshape(20, 9))
    ds = base.build(data_config(**{"kind": "numpy", "path": str(rows),
                                               "val_fraction": 0.2}),
                    batch_size=4, eval_batch_size=4, seq_len=8, seed=0)
    b = ds.train.get_batch(0)
    assert np.array_equal(b["targets"], b["inputs"] + 1)
    arrays = tmp_path / "images.npz"
    np.savez(arrays, image=np.zeros((30, 2, 2), np.float32), label=np.arange(30))
    ds = base.build(data_config(**{"kind": "numpy", "path": str(arrays),
                                               "val_fraction": 0.1}),
                    batch_size=5, eval_batch_size=5, seq_len=None, seed=0)
    assert ds.train.get_batch(3)["image"].shape == (5, 2, 2) and ds.info["val_rows"] == 3


def test_jsonl_and_text_files_builders(tmp_path):
    docs = [{"text": f"document number {i} " * (i % 5 + 1)} for i in range(40)]
    path = tmp_path / "docs.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    cfg = data_config(**{"kind": "jsonl", "path": str(path), "text_key": "text",
                                     "tokenizer": "byte", "val_fraction": 0.1, "split": "documents",
                                     "sampling": "random", "packing": "stream"})
    ds = base.build(cfg, batch_size=2, eval_batch_size=2, seq_len=16, seed=0)
    assert ds.info["train_docs"] == 36 and ds.info["val_docs"] == 4
    assert bytes(ds.train.get_batch(0)["inputs"][0].astype(np.uint8)).decode() in \
        "".join(d["text"] for d in docs)
    cfg.text_key = "body"
    with pytest.raises(KeyError, match="body"):
        base.build(cfg, batch_size=2, eval_batch_size=2, seq_len=16, seed=0)
    for i in range(3):
        (tmp_path / f"part{i}.txt").write_text(f"file {i} " * 50)
    ds = base.build(data_config(**{"kind": "text_files",
                                               "path": str(tmp_path / "part*.txt"),
                                               "tokenizer": "char", "val_fraction": 0.34,
                                               "split": "documents"}),
                    batch_size=2, eval_batch_size=2, seq_len=8, seed=0)
    assert ds.info["train_docs"] == 2 and ds.tokenizer.decode(ds.val.get_batch(0)["inputs"][0])
    with pytest.raises(FileNotFoundError):
        readers.expand_paths(str(tmp_path / "absent.txt"))


@pytest.mark.skipif(not os.path.exists(HH), reason=f"real data not found at {HH}")
def test_jsonl_on_hh_rlhf_with_eos_and_resume():
    cfg = data_config(**{"kind": "jsonl", "path": HH, "text_key": "chosen",
                                     "tokenizer": "bpe:2000", "val_fraction": 0.1, "split": "documents",
                                     "max_docs": 400, "packing": "stream"})
    ds = base.build(cfg, batch_size=4, eval_batch_size=4, seq_len=64, seed=0)
    eos = ds.tokenizer.token_id("</s>")
    assert (ds.train.tokens == eos).sum() == ds.info["train_docs"] - 1   # EOS between documents
    assert _resume_matches(lambda: ds.train)
