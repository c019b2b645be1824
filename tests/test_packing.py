"""Packing with segment ids: hand-computed rows, builder, and exact resume."""
import os

import numpy as np
import pytest

from conftest import SHARED_DATA, data_config
from pretrainx.data import base, packing

WIKITEXT = os.path.join(SHARED_DATA, "wikitext-2", "valid.txt")
DOCS = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]


def _rows(**kw):
    return {k: v.tolist() for k, v in packing.pack_documents(DOCS, seq_len=4, **kw).items()}


def test_greedy_packing_by_hand():
    r = _rows(mode="greedy")
    assert r["inputs"] == [[1, 2, 3, 4], [6, 7, 8, 9]]
    assert r["targets"] == [[2, 3, 0, 5], [7, 8, 9, 0]]
    assert r["segment_ids"] == [[1, 1, 1, 2], [1, 1, 1, 1]]
    assert r["positions"] == [[0, 1, 2, 0], [0, 1, 2, 3]]
    # 3 -> 4 would cross into the next document; row 2's last target is padding
    assert r["weights"] == [[1, 1, 0, 1], [1, 1, 1, 0]]


def test_concat_packing_by_hand():
    r = _rows(mode="concat")
    assert r["inputs"] == [[1, 2, 3, 4], [5, 6, 7, 8]]          # stride 4: 5 starts row 2
    assert r["segment_ids"] == [[1, 1, 1, 2], [1, 2, 2, 2]]
    assert r["positions"] == [[0, 1, 2, 0], [0, 0, 1, 2]]
    assert r["weights"] == [[1, 1, 0, 1], [0, 1, 1, 1]]
    assert r["targets"][1][1:] == [7, 8, 9]


def test_pad_mode_one_document_per_row():
    r = _rows(mode="pad", pad_id=-1)
    assert r["inputs"] == [[1, 2, 3, -1], [4, 5, -1, -1], [6, 7, 8, 9]]
    assert r["segment_ids"] == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    assert r["weights"] == [[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]]


def test_long_document_pieces_overlap_so_no_pair_is_lost():
    r = packing.pack_documents([list(range(1, 12))], seq_len=4, mode="greedy")
    pairs = {(i, t) for row_i, row_t, row_w in zip(r["inputs"], r["targets"], r["weights"])
             for i, t, w in zip(row_i, row_t, row_w) if w}
    assert pairs == {(i, i + 1) for i in range(1, 11)}


def test_weights_only_inside_documents_on_random_docs():
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, 50, rng.integers(1, 30)).tolist() for _ in range(100)]
    for mode in packing.MODES:
        r = packing.pack_documents(docs, seq_len=16, mode=mode)
        seg, w = r["segment_ids"], r["weights"]
        assert np.all(w[seg == 0] == 0)
        assert np.all(np.diff(seg, axis=1)[w[:, :-1] > 0] == 0)      # weighted pairs stay inside
        if mode != "pad":                                           # nothing dropped
            trained = int(w.sum())
            assert trained == sum(len(d) - 1 for d in docs)


def test_packed_batches_resume_and_shard():
    rows = packing.pack_documents([[i] * (i % 7 + 2) for i in range(200)], seq_len=8)
    make = lambda: packing.PackedBatches(rows, batch_size=4, seed=2)  # noqa: E731
    src = make()
    seq = [src.get_batch(i) for i in range(12)]
    again = make()
    for i in range(6, 12):                                        # resumed at index 6
        b = again.get_batch(i)
        assert all(np.array_equal(b[k], seq[i][k]) for k in b)
    halves = [src.get_batch(3, shard=(p, 2)) for p in range(2)]
    assert np.array_equal(np.concatenate([h["segment_ids"] for h in halves]), seq[3]["segment_ids"])
    assert 0 < src.fill <= 1


@pytest.mark.skipif(not os.path.exists(WIKITEXT), reason=f"real data not found at {WIKITEXT}")
def test_packed_rows_on_wikitext_paragraphs():
    cfg = data_config(**{"kind": "text", "path": WIKITEXT, "split": "documents",
                                     "doc_separator": "\n", "tokenizer": "bpe:2000",
                                     "val_fraction": 0.1, "packing": "greedy",
                                     "max_bytes": 300_000})
    ds = base.build(cfg, batch_size=8, eval_batch_size=4, seq_len=128, seed=0)
    b = ds.train.get_batch(0)
    assert set(b) == {"inputs", "targets", "segment_ids", "positions", "weights"}
    assert b["inputs"].shape == (8, 128)
    bos, eos = ds.tokenizer.token_id("<s>"), ds.tokenizer.token_id("</s>")
    starts = (b["positions"] == 0) & (b["segment_ids"] > 0)
    assert np.all(b["positions"][b["inputs"] == bos] == 0)        # <s> opens every document
    # segments that do not open with <s> are the pieces of paragraphs longer than a row
    assert (b["inputs"][starts] == bos).mean() > 0.5
    assert np.all(b["weights"][b["inputs"] == eos] == 0)          # never predict past </s>
    assert ds.val.get_batch(0)["inputs"].shape == (4, 128)
    assert ds.info["packing_fill"] > 0.5
