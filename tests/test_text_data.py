"""The "text" data builder: nanoGPT's split, determinism, clear errors."""
import os

import numpy as np
import pytest

from pretrainx import data
from pretrainx.data import readers
from conftest import SHARED_DATA, data_config

SHAKESPEARE = os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt")


def cfg(**kw):
    base = dict(kind="text", path="stdlib", tfds_name="", tfds_data_dir="", tfds_text_key="text",
                max_bytes=100_000, tokenizer="byte", val_fraction=0.1, seq_len=16, sampling="random")
    base.update(kw)
    return data_config(**base)


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


DOCS = ["alpha beta gamma. ", "delta epsilon. ", "zeta eta theta iota. ", "kappa lambda mu. "]


def test_split_rules_chars_and_documents():
    from pretrainx.data import text as text_lib
    total = sum(len(d) for d in DOCS)
    train, val = text_lib.split_documents(DOCS, 0.25, "chars")    # nanoGPT: by position
    assert sum(len(p.text) for p in train) == int(total * 0.75)
    assert "".join(p.text for p in train + val) == "".join(DOCS)
    cut = [p for p in train if not p.ends]                         # the document cut in two
    assert len(cut) == 1 and not val[0].starts and val[0].ends
    train, val = text_lib.split_documents(DOCS, 0.25, "documents")
    assert [p.text for p in val] == DOCS[3:] and all(p.starts and p.ends for p in train + val)
    with pytest.raises(ValueError, match="data.split must be one of"):
        build(cfg(split="sentences"))


def test_document_split_keeps_validation_documents_whole(tmp_path):
    for i in range(10):
        (tmp_path / f"doc{i}.txt").write_text(f"document {i} " * 20)
    ds = build(cfg(kind="text_files", path=str(tmp_path / "doc*.txt"), split="documents",
                   val_fraction=0.2))
    assert ds.info["train_docs"] == 8 and ds.info["val_docs"] == 2
    assert ds.info["val_chars"] == sum(len(f"document {i} " * 20) for i in (8, 9))
    by_chars = build(cfg(kind="text_files", path=str(tmp_path / "doc*.txt"), val_fraction=0.25))
    assert by_chars.info["val_chars"] == by_chars.info["chars"] - int(by_chars.info["chars"] * 0.75)


def test_objectives_can_ask_for_raw_token_rows_of_their_own_length():
    c = cfg(seq_len=16)
    shifted = data.build(c, batch_size=4, eval_batch_size=4, seq_len=16, seed=3)
    raw = data.build(c, batch_size=4, eval_batch_size=4, seq_len=40, seed=3, fields=("tokens",))
    assert set(raw.train.get_batch(0)) == {"tokens"} and raw.train.get_batch(0)["tokens"].shape == (4, 40)
    assert shifted.train.get_batch(0)["inputs"].shape == (4, 16)
    packed = data.build(cfg(packing="greedy", doc_separator="\n"), batch_size=4, eval_batch_size=4,
                        seq_len=24, seed=3, fields=("tokens",))
    assert set(packed.train.get_batch(1)) == {"tokens", "segment_ids", "positions"}


@pytest.mark.slow
def test_a_resumed_run_loads_its_saved_tokenizer_instead_of_fitting_again(tmp_path):
    from pretrainx import objectives
    from pretrainx.core import train
    from test_train import tiny_config
    corpus, workdir = tmp_path / "corpus.txt", str(tmp_path / "run")
    corpus.write_text("the quick brown fox jumps over the lazy dog\n" * 50)
    c = tiny_config(**{"data.path": str(corpus), "data.tokenizer": "char", "model.vocab_size": 64,
                       "data.seq_len": 8, "model.max_len": 8, "train.steps": 4,
                       "checkpoint.every": 2})
    first = train.run(c, workdir, stop_after=3)                      # saved step 2, then "died"
    saved = train.setup(c, workdir).dataset.tokenizer.chars
    corpus.write_text("a different corpus without most of those letters\n" * 50)
    assert train.setup(c, workdir).dataset.tokenizer.chars == saved  # loaded, not fit again
    refit = train.build_dataset(c, objectives.get("clm")(c))          # what a fresh start fits
    assert refit.tokenizer.chars != saved and first.stopped_early
