"""TFDS text through ArrayRecord data sources, fully offline; a TFDS text set as a source of
``pretrainx tokenize`` gives the same shards as its documents in a JSONL file."""
import filecmp
import json
import os
import sys
import time

import pytest

from conftest import SHARED_DATA
from pretrainx import main as cli_main
from pretrainx.data import tfds_text

SHAKESPEARE = os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt")


def test_prepare_then_load_reads_the_text_back(tmp_path):
    corpus = tmp_path / "corpus.txt"
    text = "".join(f"line {i}: caf\u00e9 \u6f22\n" for i in range(1000))
    corpus.write_text(text, encoding="utf-8")
    data_dir = str(tmp_path / "tfds")
    tfds_text.prepare_text_dataset(str(corpus), data_dir, name="tiny_local_text",
                                   fractions=(0.8, 0.1, 0.1))
    train = tfds_text.load_text("tiny_local_text", data_dir, "train")
    rest = tfds_text.load_text("tiny_local_text", data_dir, "validation+test")
    assert train == text[:int(len(text) * 0.8)]
    assert train + rest == text
    assert tfds_text.load_text("tiny_local_text", data_dir, "train+validation+test") == text


@pytest.mark.skipif(not os.path.exists(SHAKESPEARE), reason=f"real data not found at {SHAKESPEARE}")
def test_tiny_shakespeare_nanogpt_split(tmp_path):
    data_dir = str(tmp_path / "tfds")
    tfds_text.prepare_text_dataset(SHAKESPEARE, data_dir, name="tiny_shakespeare")
    train = tfds_text.load_text("tiny_shakespeare", data_dir, "train")
    assert len(train) == 1_003_854            # nanoGPT's first 90 % of the characters
    with open(SHAKESPEARE, encoding="utf-8") as f:
        rest = tfds_text.load_text("tiny_shakespeare", data_dir, "validation+test")
        assert train + rest == f.read()


@pytest.mark.parametrize("name", ["tiny_shakespeare", "no_such_dataset_xyz"])
def test_missing_dataset_fails_fast_saying_how_to_provide_it(tmp_path, name):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as e:
        tfds_text.load_text(name, str(tmp_path / "empty"), "train")
    assert time.perf_counter() - start < 10
    message = str(e.value)
    assert name in message and "prepare_text_dataset" in message and "tfds build" in message
    assert "\n" not in message


@pytest.fixture(scope="module")
def paragraph_set(tmp_path_factory):
    """A TFDS text set of Tiny Shakespeare's paragraphs (one record each), prepared locally, and
    the train split's paragraphs, cut here from the text independently of the package."""
    root = tmp_path_factory.mktemp("tfds_paragraphs")
    with open(SHAKESPEARE, encoding="utf-8") as f:
        text = "caf\u00e9 \u6f22\u5b57 \U0001f642\n\n" + f.read()[:60_000]
    (root / "plays.txt").write_text(text, encoding="utf-8")
    data_dir = root / "tfds"
    tfds_text.prepare_text_dataset(str(root / "plays.txt"), str(data_dir), name="plays",
                                   fractions=(0.95, 0.05, 0.0), examples_at="\n\n")
    train = [p for p in text[:int(len(text) * 0.95)].split("\n\n") if p.strip()]
    return {"root": root, "data_dir": str(data_dir), "train": train}


def tokenize_argv(source, out, data_dir, *extra):
    return ["tokenize", source, "--tokenizer", "byte", "--out", str(out), "--shard-mb", "0.01",
            "--val-fraction", "0.1", "--tfds-data-dir", data_dir, *extra]


def test_a_tfds_source_tokenizes_like_the_same_documents_in_jsonl(paragraph_set, tmp_path):
    jsonl = tmp_path / "plays.jsonl"
    jsonl.write_text("".join(json.dumps({"text": p}) + "\n" for p in paragraph_set["train"]))
    data_dir = paragraph_set["data_dir"]
    assert cli_main.cli(tokenize_argv("tfds:plays:train", tmp_path / "tfds", data_dir)) == 0
    assert cli_main.cli(tokenize_argv(str(jsonl), tmp_path / "jsonl", data_dir)) == 0
    manifest = json.loads((tmp_path / "tfds" / "manifest.json").read_text())
    assert len(manifest["shards"]) > 3 and manifest["docs"] == len(paragraph_set["train"])
    assert manifest["sources"] == [{"tfds": "plays", "split": "train", "data_dir": data_dir,
                                    "records": len(paragraph_set["train"])}]
    shard_files = sorted(n for n in os.listdir(tmp_path / "tfds") if n.startswith("shard_"))
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "tfds", tmp_path / "jsonl",
                                               shard_files + ["tokenizer.json"], shallow=False)
    assert not mismatch and not errors and len(match) == 3 * len(manifest["shards"]) + 1
    other = json.loads((tmp_path / "jsonl" / "manifest.json").read_text())
    assert manifest["split"] == other["split"] and manifest["tokens"] == other["tokens"]


@pytest.mark.parametrize("source, extra, expected", [
    ("tfds:no_such_set:train", (), ["'no_such_set' is not prepared", "--tfds-data-dir"]),
    ("tfds:plays:dev", (), ["tfds:plays:dev", "split 'dev'", "validation"]),
    ("tfds:plays:train", ("--text-key", "body"), ["tfds:plays:train", "no feature 'body'",
                                                  "--text-key"]),
])
def test_bad_tfds_sources_are_one_line_naming_them(paragraph_set, tmp_path, capsys, source,
                                                   extra, expected):
    argv = tokenize_argv(source, tmp_path / "out", paragraph_set["data_dir"], *extra)
    assert cli_main.cli(argv) == cli_main.EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("pretrainx: error:"), err
    assert all(e in err for e in expected), err


def test_without_tensorflow_datasets_a_tfds_source_names_the_extra(paragraph_set, tmp_path,
                                                                   capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)    # import -> ImportError
    argv = tokenize_argv("tfds:plays:train", tmp_path / "out", paragraph_set["data_dir"])
    assert cli_main.cli(argv) == cli_main.EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'pretrainx[tfds]'" in err, err
