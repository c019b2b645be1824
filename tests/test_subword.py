"""Trained subword vocabularies on real WikiText-2: exact byte-level BPE round trip, compression,
special-token ids, save/load through tokenizer.load, and the tokenizer CLI."""
import os
import unicodedata

import pytest

from conftest import SHARED_DATA
from pretrainx.data import special_tokens as st
from pretrainx.tools import tokenizer_cli
from pretrainx.data import subword, tokenizer

WIKITEXT = os.path.join(SHARED_DATA, "wikitext-2", "valid.txt")
needs_wikitext = pytest.mark.skipif(not os.path.exists(WIKITEXT),
                                    reason=f"real data not found at {WIKITEXT} (../shared/data)")


def _text():
    with open(WIKITEXT, encoding="utf-8", newline="") as f:
        return f.read()


@pytest.fixture(scope="module")
def bpe():
    return subword.train_tokenizer([WIKITEXT], "bpe", 8000)


def test_special_tokens_have_stable_ids():
    assert st.ALL[:7] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>"]
    assert st.sentinels(3) == ["<extra_id_0>", "<extra_id_1>", "<extra_id_2>"]
    assert len(st.ALL) == 7 + 100 and st.ALL[-1] == "<extra_id_99>"


@needs_wikitext
def test_bpe_round_trips_wikitext_exactly_and_compresses(bpe):
    text = _text()
    ids = subword.encode_corpus(bpe, WIKITEXT, progress=False)
    assert bpe.decode(ids) == text
    assert bpe.decode(bpe.encode(text[:5000])) == text[:5000]
    assert len(ids) / len(text.encode("utf-8")) < 0.35
    assert bpe.vocab_size == 8000
    for i, name in enumerate(st.ALL):
        assert bpe.token_id(name) == i
    with pytest.raises(KeyError):
        bpe.token_id("<not a token>")


@needs_wikitext
def test_bpe_round_trips_odd_text(bpe):
    for s in ["  leading spaces", "tabs\tand\r\nCRLF\n\n\n", "émigré naïve 漢字 🙂", "</s>[MASK] x",
              "▁meta", ""]:
        assert bpe.decode(bpe.encode(s)) == s


@needs_wikitext
def test_encode_batch_matches_encode(bpe):
    lines = _text().splitlines(keepends=True)[:200]
    assert bpe.encode_batch(lines) == [bpe.encode(x) for x in lines]


@needs_wikitext
def test_save_load_through_tokenizer_load(bpe, tmp_path):
    path = bpe.save(str(tmp_path))
    assert os.path.basename(path) == tokenizer.FILENAME
    for where in (str(tmp_path), path):
        again = tokenizer.load(where)
        assert isinstance(again, subword.SubwordTokenizer)
        assert again.vocab_size == bpe.vocab_size
        assert again.encode("The game 's") == bpe.encode("The game 's")
    assert tokenizer.from_spec(str(tmp_path)).vocab_size == 8000


@needs_wikitext
@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_wordpiece_and_unigram_round_trip_modulo_normalisation(kind):
    tok = subword.train_tokenizer([WIKITEXT], kind, 8000)
    assert tok.token_id(st.PAD) == 0 and tok.token_id(st.MASK) == 4
    text = _text()[:200_000]
    lines = text.splitlines(keepends=True)
    decoded = "".join(tok.decode(ids) for ids in tok.encode_batch(lines))

    def squash(s):  # both drop or merge whitespace; NFC is their one normaliser
        return "".join(unicodedata.normalize("NFC", s).split())
    assert squash(decoded) == squash(text)


def test_tokenizer_cli_train_and_encode(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat.\nthe dog sat on the log.\n" * 200)
    out = tmp_path / "tok"
    assert tokenizer_cli.main(["train", "--corpus", str(corpus), "--kind", "bpe",
                               "--vocab-size", "500", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "vocab size" in printed and "tokens/byte" in printed and "tokenizer.json" in printed
    assert tokenizer_cli.main(["tokenizer", "encode", "--tokenizer", str(out),
                               "--text", "the cat"]) == 0
    assert "'the cat'" in capsys.readouterr().out


def test_tokenizer_cli_missing_corpus_is_one_line_exit_2(tmp_path, capsys):
    from pretrainx import main
    missing = str(tmp_path / "nope.txt")
    assert main.cli(["tokenizer", "train", "--corpus", missing, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert missing in err and len(err.splitlines()) == 1


@needs_wikitext
def test_batched_corpus_encoding_decodes_to_the_file(bpe):
    # Speed is measured by experiments/bench_tokenize.py; here: batches of lines lose nothing.
    ids = subword.encode_corpus(bpe, WIKITEXT, batch_lines=1000, progress=False)
    with open(WIKITEXT, encoding="utf-8", newline="") as f:
        assert bpe.decode(ids.tolist()) == f.read()
