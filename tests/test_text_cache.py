"""The token cache of large text corpora (data/text_cache.py): a second start reads the first's
token streams memory-mapped and serves the uncached pipeline's batches exactly; a changed file,
another tokenizer or other special tokens never reuse an entry; a small corpus is never cached."""
import mmap
import os

import numpy as np
import pytest

from pretrainx.data import base as data_base
from pretrainx.data import tokenizer as tokenizer_lib
from conftest import SHARED_DATA, data_config

SHAKESPEARE = os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt")
pytestmark = pytest.mark.skipif(not os.path.exists(SHAKESPEARE), reason="../shared/data absent")


@pytest.fixture
def corpus(tmp_path):
    """Two Shakespeares, 2.2 MB: over the 1 MB threshold the tests set."""
    text = open(SHAKESPEARE, encoding="utf-8").read()
    path = tmp_path / "corpus.txt"
    path.write_text(text + text, encoding="utf-8")
    return str(path)


def _config(corpus, cache_dir, **fields):
    return data_config(**{"kind": "text", "path": corpus, "cache_min_mb": 1.0,
                          "cache_dir": str(cache_dir), **fields})


def _build(config, tokenizer=None, special_tokens=(), fields=None):
    return data_base.build(config, batch_size=4, eval_batch_size=4, seq_len=32, seed=3,
                           tokenizer=tokenizer, special_tokens=special_tokens, fields=fields)


def _same_batches(a, b, indices=(0, 1, 7, 1000)):
    for index in indices:
        for source_a, source_b in ((a.train, b.train), (a.val, b.val)):
            batch_a, batch_b = source_a.get_batch(index), source_b.get_batch(index)
            assert batch_a.keys() == batch_b.keys()
            for key in batch_a:
                np.testing.assert_array_equal(batch_a[key], batch_b[key])


def _memory_mapped(array) -> bool:
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


def _entries(cache_dir):
    return sorted(e for e in os.listdir(cache_dir) if not e.startswith(".")) if os.path.isdir(cache_dir) else []


@pytest.mark.parametrize("tokenizer", ["char", "byte"])
def test_a_second_start_reads_the_cache_and_gets_the_same_batches(corpus, tmp_path, tokenizer):
    cache = tmp_path / "cache"
    uncached = _build(_config(corpus, cache, tokenizer=tokenizer, cache_min_mb=0.0))
    assert _entries(cache) == []
    first = _build(_config(corpus, cache, tokenizer=tokenizer))
    assert len(_entries(cache)) == 1
    second = _build(_config(corpus, cache, tokenizer=tokenizer))
    assert _memory_mapped(second.train.tokens)      # read from the entry, not re-encoded
    assert not _memory_mapped(first.train.tokens)
    assert second.info == first.info == uncached.info
    assert second.tokenizer.vocab_size == uncached.tokenizer.vocab_size
    assert second.tokenizer.decode(list(second.train.tokens[:50])) == open(corpus).read()[:50]
    _same_batches(uncached, second)
    raw = _build(_config(corpus, cache, tokenizer=tokenizer), fields=("tokens",))   # unshifted rows
    _same_batches(_build(_config(corpus, cache, tokenizer=tokenizer, cache_min_mb=0.0),
                         fields=("tokens",)), raw)


def test_a_changed_file_or_other_options_make_a_new_entry(corpus, tmp_path):
    cache = tmp_path / "cache"
    _build(_config(corpus, cache))
    _build(_config(corpus, cache, val_fraction=0.2))
    _build(_config(corpus, cache), special_tokens=("[MASK]",))
    assert len(_entries(cache)) == 3
    with open(corpus, "a", encoding="utf-8") as f:
        f.write("\nA LINE ADDED: zq")
    changed = _build(_config(corpus, cache))
    assert len(_entries(cache)) == 4
    assert changed.tokenizer.decode(list(changed.train.tokens[-3:])) != "" and \
        "zq" in changed.tokenizer.decode(list(np.asarray(changed.val.tokens)[-5:]))


def test_a_resume_with_another_tokenizer_encodes_again(corpus, tmp_path):
    cache = tmp_path / "cache"
    _build(_config(corpus, cache))                       # the entry holds the corpus's char vocab
    other = tokenizer_lib.from_spec("char", "".join(sorted(set(open(corpus).read()))) + "\u00e9")
    resumed = _build(_config(corpus, cache), tokenizer=other)
    assert not _memory_mapped(resumed.train.tokens)
    assert resumed.tokenizer.vocab_size == other.vocab_size
    same = _build(_config(corpus, cache, cache_min_mb=0.0), tokenizer=other)
    _same_batches(same, resumed)


def test_a_corpus_under_the_threshold_or_packed_rows_are_not_cached(corpus, tmp_path):
    cache = tmp_path / "cache"
    _build(_config(corpus, cache, cache_min_mb=3.0))                     # 2.2 MB < 3 MB
    _build(_config(corpus, cache, packing="greedy", doc_separator="\n\n"))
    assert _entries(cache) == []
