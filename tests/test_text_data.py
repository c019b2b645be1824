"""The "text" data builder: nanoGPT's split, determinism, clear errors."""
import os

import ml_collections
import numpy as np
import pytest

from pretrainx import data
from pretrainx.data import readers
from conftest import SHARED_DATA

SHAKESPEARE = os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt")


def cfg(**kw):
    base = dict(kind="text", path="stdlib", tfds_name="", tfds_data_dir="", tfds_text_key="text",
                max_bytes=100_000, tokenizer="byte", val_fraction=0.1, seq_len=16, sampling="random")
    base.update(kw)
    return ml_collections.ConfigDict(base)


def build(c, bs=4):
    return data.build(c, batch_size=bs, eval_batch_size=bs, seq_len=c.seq_len, seed=3)


@pytest.mark.skipif(not os.path.exists(SHAKESPEARE), reason="shared data folder absent")
def test_nanogpt_shakespeare_split():
    ds = build(cfg(path=SHAKESPEARE, max_bytes=0, tokenizer="char"))
    assert ds.tokenizer.vocab_size == 65
    assert ds.info["train_tokens"] == 1_003_854 and ds.info["val_tokens"] == 111_540


def test_stdlib_corpus_is_real_python():
    corpus = readers.read_corpus("stdlib", max_bytes=50_000)
    assert len(corpus) == 50_000 and "def " in corpus and "import " in corpus


def test_batches_are_deterministic_and_targets_shift_inputs():
    ds = build(cfg())
    a, b = ds.train.get_batch(7), build(cfg()).train.get_batch(7)
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
    np.testing.assert_array_equal(a["inputs"][:, 1:], a["targets"][:, :-1])
    assert not np.array_equal(a["inputs"], ds.train.get_batch(8)["inputs"])
    halves = [ds.train.get_batch(7, (i, 2))["inputs"] for i in range(2)]
    np.testing.assert_array_equal(np.concatenate(halves), a["inputs"])


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="data file not found"):
        build(cfg(path=str(tmp_path / "none.txt")))
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(ValueError, match="data file is empty"):
        build(cfg(path=str(tmp_path / "empty.txt")))
