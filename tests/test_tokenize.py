"""`pretrainx tokenize`: shards equal one pass of the tokenizer, the same bytes whatever the
worker count or a kill -9 in the middle, and one-line errors naming the file for bad input."""
import filecmp
import gzip
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tokenizers
import zstandard

from conftest import SHARED_DATA
from pretrainx import main as cli_main
from pretrainx.data import special_tokens as st
from pretrainx.data import subword

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAKESPEARE = os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt")
SHARD_MB = "0.03"     # ~30 kB of text per shard: a dozen shards from this corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A text file, JSONL (.gz and .zst) and Parquet of real text, a BPE tokenizer trained on it,
    and the documents of each file in order, read here independently of the package."""
    root = tmp_path_factory.mktemp("corpus")
    with open(SHAKESPEARE, encoding="utf-8") as f:
        text = f.read()[:200_000]
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    (root / "a.txt").write_text("\n\n".join(paragraphs[:400]), encoding="utf-8")
    records = [{"id": i, "text": p} for i, p in enumerate(paragraphs[400:700])]
    lines = "".join(json.dumps(r) + "\n" for r in records).encode()
    (root / "b.jsonl.gz").write_bytes(gzip.compress(lines))
    (root / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines))
    pq.write_table(pa.table({"text": paragraphs[700:], "n": list(range(len(paragraphs) - 700))}),
                   root / "d.parquet", row_group_size=50)
    tok = subword.train_from_texts(paragraphs, "bpe", 600)
    tok.save(str(root / "tok"))
    docs = paragraphs[:400] + [r["text"] for r in records] * 2 + paragraphs[700:]
    files = [str(root / n) for n in ("a.txt", "b.jsonl.gz", "c.jsonl.zst", "d.parquet")]
    return {"root": root, "files": files, "docs": docs, "tok": str(root / "tok")}


def tokenize(corpus, out, *extra):
    return cli_main.cli(["tokenize", *corpus["files"], "--tokenizer", corpus["tok"], "--out",
                         str(out), "--shard-mb", SHARD_MB, "--val-fraction", "0.05", *extra])


@pytest.fixture(scope="module")
def one_worker(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "one"
    assert tokenize(corpus, out) == 0
    return out


def same_files(a, b):
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert not mismatch and not errors, (mismatch, errors)
    return names


def test_concatenated_shards_equal_one_pass_tokenization(corpus, one_worker):
    manifest = json.loads((one_worker / "manifest.json").read_text())
    assert len(manifest["shards"]) > 5 and manifest["dtype"] == "uint16"
    hf = tokenizers.Tokenizer.from_file(os.path.join(corpus["tok"], "tokenizer.json"))
    eos = hf.token_to_id(st.EOS)
    expected = [e.ids + [eos] for e in hf.encode_batch(corpus["docs"], add_special_tokens=False)]
    tokens = np.concatenate([np.load(one_worker / f"{s['name']}.tokens.npy")
                             for s in manifest["shards"]])
    np.testing.assert_array_equal(tokens, np.concatenate(expected))
    # the document index: each shard's offsets are its documents' lengths, summed
    lengths = np.concatenate([np.diff(np.load(one_worker / f"{s['name']}.docs.npy"))
                              for s in manifest["shards"]])
    np.testing.assert_array_equal(lengths, [len(e) for e in expected])
    assert manifest["docs"] == len(corpus["docs"]) and manifest["tokens"] == len(tokens)
    assert [s["bytes"] for s in manifest["sources"]] == [os.path.getsize(f) for f in corpus["files"]]
    split = manifest["split"]
    assert split["train_tokens"] + split["val_tokens"] == len(tokens)
    assert 0.05 * len(tokens) <= split["val_tokens"] < 0.05 * len(tokens) + max(map(len, expected))


def test_one_and_three_workers_write_the_same_bytes(corpus, one_worker, tmp_path):
    assert tokenize(corpus, tmp_path / "three", "--workers", "3") == 0
    names = same_files(one_worker, tmp_path / "three")
    assert "manifest.json" in names and "tokenizer.json" in names


@pytest.mark.slow
def test_three_processes_making_one_folder_at_once_all_get_it_whole(corpus, one_worker, tmp_path):
    # As the test workers each load configs/gpt/shakespeare_wiki_shards.py in a fresh clone:
    # they tokenized into one folder at once, and one's rename of tokenize.json failed.
    folder = tmp_path / "once"
    argv = [*corpus["files"], "--tokenizer", corpus["tok"], "--shard-mb", SHARD_MB,
            "--val-fraction", "0.05"]
    code = ("import sys; from pretrainx.tools import tokenize_corpus as t; "
            "print(t.tokenize_once(sys.argv[1], sys.argv[2:]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(folder), *argv], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-500:] for _, err in outs]
    assert {out.strip() for out, _ in outs} == {str(folder)}
    same_files(one_worker, folder)
    assert sorted(os.listdir(tmp_path)) == ["once"]          # no scratch folder left behind


def test_kill_9_during_tokenize_then_rerun_gives_the_same_shards(corpus, tmp_path):
    def argv(out):
        return ["tokenize", *corpus["files"], "--tokenizer", corpus["tok"], "--out", str(out),
                "--shard-mb", "0.005", "--val-fraction", "0.05"]
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "pretrainx.main", *argv(out)],
                            env=dict(os.environ, PYTHONPATH=ROOT), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "shard_00002.json").exists():
        assert proc.poll() is None, "tokenize ended before it could be killed"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)      # the reader and its workers, mid-corpus
    proc.wait()
    assert not (out / "manifest.json").exists()
    assert len(list(out.glob("shard_*.json"))) >= 3
    assert cli_main.cli(argv(out)) == 0      # keeps the finished shards, writes the rest
    assert cli_main.cli(argv(tmp_path / "whole")) == 0
    same_files(out, tmp_path / "whole")


def one_line_error(capsys, argv) -> str:
    assert cli_main.cli(argv) == cli_main.EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("name", ["b.jsonl.gz", "c.jsonl.zst"])
def test_truncated_archive_is_a_one_line_error_naming_it(corpus, tmp_path, capsys, name):
    whole = (corpus["root"] / name).read_bytes()
    cut = tmp_path / name
    cut.write_bytes(whole[:len(whole) - 7])
    err = one_line_error(capsys, ["tokenize", str(cut), "--tokenizer", corpus["tok"],
                                  "--out", str(tmp_path / "out")])
    assert str(cut) in err and "truncated" in err


def test_jsonl_line_without_the_text_field_names_file_and_line(corpus, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n\n{"body": "no text field"}\n')
    err = one_line_error(capsys, ["tokenize", str(bad), "--tokenizer", corpus["tok"],
                                  "--out", str(tmp_path / "out")])
    assert f"{bad}:3" in err and "'text'" in err and "body" in err


def test_a_bad_line_fixed_then_the_same_command_finishes_the_same_folder(corpus, tmp_path,
                                                                          capsys, caplog):
    bad = tmp_path / "docs.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    cmd = ["tokenize", str(bad), "--tokenizer", "byte", "--out", str(tmp_path / "out")]
    assert f"{bad}:2" in one_line_error(capsys, cmd)
    bad.write_text('{"text": "fine"}\n{"text": "fixed"}\n')
    assert cli_main.cli(cmd) == 0
    assert "unfinished run with other settings" in caplog.text
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["docs"] == 2 and manifest["sources"][0]["bytes"] == bad.stat().st_size


def test_rerun_with_other_settings_is_refused(corpus, one_worker, capsys):
    err = one_line_error(capsys, ["tokenize", *corpus["files"], "--tokenizer", "byte",
                                  "--out", str(one_worker), "--shard-mb", SHARD_MB])
    assert "tokenize.json" in err and "other settings" in err


def test_a_tokenizer_to_train_is_refused_with_what_to_give(corpus, tmp_path, capsys):
    err = one_line_error(capsys, ["tokenize", *corpus["files"], "--tokenizer", "bpe:800",
                                  "--out", str(tmp_path / "out")])
    assert "'bpe:800'" in err and "pretrainx tokenizer train" in err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def multibyte_docs():
    """Shakespeare's paragraphs with 2-, 3- and 4-byte UTF-8 characters mixed in."""
    with open(SHAKESPEARE, encoding="utf-8") as f:
        paragraphs = [p for p in f.read()[:60_000].split("\n\n") if p.strip()]
    marks = ["caf\u00e9", "\u6f22\u5b57", "\U0001f642", "na\u00efve \u00fcber"]
    return [f"{p} {marks[i % 4]}" for i, p in enumerate(paragraphs)]


@pytest.mark.parametrize("kind", ["byte", "bpe"])
def test_manifest_bytes_are_the_utf8_bytes_decoded_bytes_counts(multibyte_docs, tmp_path, kind):
    from pretrainx.data import readers, shards
    from pretrainx.data import tokenizer as tokenizer_lib
    spec = "byte"
    if kind == "bpe":
        spec = str(tmp_path / "tok")
        subword.train_from_texts(multibyte_docs, "bpe", 400).save(spec)
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"text": d}) + "\n" for d in multibyte_docs))
    out = tmp_path / "out"
    assert cli_main.cli(["tokenize", str(corpus), "--tokenizer", spec, "--out", str(out),
                         "--shard-mb", "0.008", "--val-fraction", "0.3"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    split = manifest["split"]
    assert len(manifest["shards"]) > 4
    assert (manifest["eos_id"] is None) == (kind == "byte")     # BPE: an EOS after each document
    stream = shards.open_shards(str(out), manifest)
    tok = tokenizer_lib.load(str(out / "tokenizer.json"))
    val = stream.slice(split["train_tokens"], len(stream))
    assert split["val_bytes"] == readers.decoded_bytes(val, tok, manifest["eos_id"])
    # independently: the UTF-8 bytes of the documents that start at or after the cut
    starts = np.concatenate([np.load(out / f"{s['name']}.docs.npy")[:-1] + sum(
        r["tokens"] for r in manifest["shards"][:k]) for k, s in enumerate(manifest["shards"])])
    n_val = int((starts >= split["train_tokens"]).sum())
    assert 0 < n_val < len(multibyte_docs)
    sizes = [len(d.encode("utf-8")) for d in multibyte_docs]
    assert split["val_bytes"] == sum(sizes[-n_val:]) and split["val_bytes"] > sum(
        len(d) for d in multibyte_docs[-n_val:])
    assert split["train_bytes"] == sum(sizes[:-n_val])
    assert sum(s["text_bytes"] for s in manifest["shards"]) == sum(sizes)
