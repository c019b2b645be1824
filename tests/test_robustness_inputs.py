"""Issue 24, part A, through the real command line (``main.cli`` in this process): every class of
bad input ends in exit 2 and one stderr line that names the file (and the line) or the field.

  * data readers: preference JSONL, text JSONL, images, IDX, tokenizer JSON, empty / binary
    files and directories where a file is expected;
  * objective ranges, checked before the data is read (``Objective.check_config``);
  * tools that exited 0 with nothing: ``eval`` with no held-out data, ``tokenizer train`` /
    ``tokenize`` / ``ngram`` on a corpus with no text.

Each case stops before a model is compiled, but for the one tiny run ``eval`` needs (slow)."""
import gzip
import json
import os

import numpy as np
import pytest

from pretrainx import main
from tiny_cli import tiny_gpt_flags

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
GPT = os.path.join(ROOT, "configs/gpt/shakespeare_char.py:smoke")
DPO = os.path.join(ROOT, "configs/rlhf/shakespeare_dpo.py:smoke")
TINY = tiny_gpt_flags(1)


def one_line_error(capsys, argv) -> str:
    code = main.cli([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, (code, err)
    assert err.startswith("pretrainx: error: ") and "Traceback" not in err
    return err


def train(config, workdir, *flags):
    return ["train", "--config", config, "--workdir", workdir, *flags]


def write_lines(path, *records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


PAIR = {"prompt": "ROMEO:", "chosen": " yes", "rejected": " no"}


HH = {"chosen": "Human: hi\n\nAssistant: yes", "rejected": "Human: hi\n\nAssistant: no"}


@pytest.mark.parametrize("fmt,second_line,expected", [
    ("plain", '{"prompt": "a", "chosen": "b", ', "not a JSON record"),        # malformed line
    ("plain", {"prompt": "a", "chosen": "b"}, "no field 'rejected'"),         # a side missing
    ("plain", {"prompt": "a", "chosen": 7, "rejected": "c"}, "'chosen' is a int"),   # not text
    ("plain", '["a", "b", "c"]', "a JSON list, not a record"),
    ("hh", {"chosen": "Human: hi", "rejected": "Human: hi\n\nAssistant: no"},
     "without 'Assistant:'"),
])
def test_a_bad_preference_record_names_the_file_and_its_line(tmp_path, capsys, fmt, second_line,
                                                              expected):
    good = PAIR if fmt == "plain" else HH
    pairs = write_lines(tmp_path / "pairs.jsonl", good, second_line, good)
    err = one_line_error(capsys, train(DPO, tmp_path / "w", f"--config.data.path={pairs}",
                                       f"--config.data.format={fmt}"))
    assert f"{pairs}:2" in err and expected in err


def test_text_readers_name_the_file_the_line_and_the_field(tmp_path, capsys):
    docs = tmp_path / "docs.jsonl.gz"
    with gzip.open(docs, "wt") as f:
        f.write('{"text": "fine"}\n\n{"text": 3.5}\n')
    err = one_line_error(capsys, train(GPT, tmp_path / "w", *TINY, "--config.data.kind=jsonl",
                                       f"--config.data.path={docs}"))
    assert f"{docs}:3" in err and "'text' is a float" in err
    empty = tmp_path / "empty.txt"
    empty.touch()
    binary = tmp_path / "model.bin"
    binary.write_bytes(np.arange(4096, dtype=np.int32).tobytes())
    for path, expected in ((empty, "is empty"), (binary, "binary file, not text")):
        err = one_line_error(capsys, train(GPT, tmp_path / "w", *TINY,
                                           f"--config.data.path={path}"))
        assert str(path) in err and expected in err
    # a directory where a file is expected: a text_files glob that matches a folder
    (tmp_path / "sub").mkdir()
    err = one_line_error(capsys, train(GPT, tmp_path / "w", *TINY, "--config.data.kind=text_files",
                                       f"--config.data.path={tmp_path}/s*"))
    assert f"{tmp_path}/sub is a directory" in err


def test_a_bad_tokenizer_file_is_one_line_naming_it(tmp_path, capsys):
    cases = {"garbage.json": "not json {", "list.json": "[1, 2, 3]",
             "other.json": '{"name": "not a tokenizer"}',
             "bad_bpe.json": '{"model": {"type": "BPE", "vocab": 3}}'}
    for name, content in cases.items():
        (tmp_path / name).write_text(content)
        err = one_line_error(capsys, train(GPT, tmp_path / "w", *TINY,
                                           f"--config.data.tokenizer={tmp_path / name}"))
        assert str(tmp_path / name) in err


def write_png(path, size, mode="L"):
    from PIL import Image
    shape = (size, size) if mode == "L" else (size, size, 3)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8),
                    mode).save(path)


def image_folder(tmp_path):
    root = tmp_path / "images"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            write_png(root / cls / f"{i}.png", 8)
    return root


CIFAR = os.path.join(ROOT, "configs/diffusion/cifar10_ddpm.py:jpeg")


def test_bad_images_are_named_and_mixed_modes_are_converted(tmp_path, capsys):
    from pretrainx.config import load as config_lib
    from pretrainx.data import images
    root = image_folder(tmp_path)
    (root / "b" / "9.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"cut short")
    err = one_line_error(capsys, train(CIFAR, tmp_path / "w", f"--config.data.path={root}"))
    assert f"{root / 'b' / '9.png'}: not a readable PNG/JPEG image" in err
    write_png(root / "b" / "9.png", 12)                     # another size
    err = one_line_error(capsys, train(CIFAR, tmp_path / "w", f"--config.data.path={root}"))
    assert f"{root / 'b' / '9.png'} is 12x12" in err and "data.image_size" in err
    # the fix the line names works: every image resized; a colour image among greys: all RGB
    write_png(root / "a" / "9.png", 8, "RGB")
    data = config_lib.override(config_lib.load(CIFAR).data,
                               {"path": str(root), "image_size": 8})
    arrays = images.load_image_arrays(data)
    assert arrays.train_images.shape[1:] == (8, 8, 3)
    assert len(arrays.train_images) + len(arrays.heldout_images) == 8


FASHION = os.path.join(ROOT, "configs/diffusion/fashion_mnist_ddpm.py:smoke")


def write_idx(path, array, cut=0):
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(data[:len(data) - cut])


def test_a_truncated_idx_file_is_found_from_its_header(tmp_path, capsys):
    for prefix, n in (("train", 20), ("t10k", 10)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", np.zeros((n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((20, 28, 28)), cut=100)
    err = one_line_error(capsys, train(FASHION, tmp_path / "w", f"--config.data.path={tmp_path}"))
    assert f"{tmp_path / 'train-images-idx3-ubyte'} holds" in err and "truncated" in err
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08")   # inside its header
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((20, 28, 28)))
    err = one_line_error(capsys, train(FASHION, tmp_path / "w", f"--config.data.path={tmp_path}"))
    assert "t10k-labels-idx1-ubyte" in err


T5 = os.path.join(ROOT, "configs/t5/t5_small.py:smoke")
UL2 = os.path.join(ROOT, "configs/ul2/ul2_small.py:smoke")
PREFIX = os.path.join(ROOT, "configs/ul2/prefix_lm_char.py:smoke")
BERT = os.path.join(ROOT, "configs/bert/bert_base.py:smoke")
PPO = os.path.join(ROOT, "configs/rlhf/shakespeare_ppo.py:smoke")
DIGITS = os.path.join(ROOT, "configs/diffusion/digits_smoke.py")
SHORTCUT = os.path.join(ROOT, "configs/diffusion/digits_shortcut.py:smoke")
SPEAKERS = os.path.join(ROOT, "configs/finetune/speakers_bert.py:smoke")


@pytest.mark.parametrize("config,flags,field", [
    (T5, ["--config.data.seq_len=4"], "config.span.noise_density"),   # no noise token fits
    (T5, ["--config.span.noise_density=1.0"], "config.span.noise_density"),
    (T5, ["--config.span.mean_span_length=0.5"], "config.span.mean_span_length"),
    (DPO, ["--config.dpo.beta=0.0"], "config.dpo.beta"),
    (DPO, ["--config.dpo.beta=-0.1"], "config.dpo.beta"),
    (PREFIX, ["--config.prefix.max_fraction=-0.5"], "config.prefix.max_fraction"),
    (PREFIX, ["--config.prefix.max_fraction=1.5"], "config.prefix.max_fraction"),
    (UL2, ["--config.ul2.targets_length=1"], "config.ul2.targets_length"),
    (BERT, ["--config.mlm.rate=0.0"], "config.mlm.rate"),
    (BERT, ["--config.mlm.rate_start=1.0"], "config.mlm.rate_start"),
    (PPO, ["--config.ppo.kl_coef=-0.1"], "config.ppo.kl_coef"),
    (PPO, ["--config.ppo.clip=0.0"], "config.ppo.clip"),
    (PPO, ["--config.ppo.gamma=1.5"], "config.ppo.gamma"),
    (PPO, ["--config.ppo.eos=xyzzy"], "config.ppo.eos"),       # its first token 'x' stopped all
    (DIGITS, ["--config.sample.guidance=-1.0"], "config.sample.guidance"),
    (DIGITS, ["--config.sample.steps=2000", "--config.sample.sampler=ddim"], "config.sample.steps"),
    (SHORTCUT, ["--config.shortcut.bootstrap_fraction=-0.1"], "config.shortcut.bootstrap_fraction"),
    (SPEAKERS, ["--config.classify.num_classes=5", "--config.eval.batch_size=64"],
     "config.classify.num_classes"),                             # the data has 10 speakers
])
def test_an_objective_refuses_settings_that_make_it_meaningless(tmp_path, capsys, config, flags,
                                                                field):
    err = one_line_error(capsys, train(config, tmp_path / "w", *flags))
    assert "SettingError" in err and field in err
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_ul2_denoiser_mixtures_are_checked_entry_by_entry(tmp_path, capsys):
    for denoisers, expected in (
            ("(('r','span',3.0,0.15,-1.0),)", "weight >= 0"),
            ("(('r','span',3.0,0.15,0.0),('x','span',8.0,0.5,0.0))", "weights are all 0"),
            ("(('r','span',0.5,0.15,1.0),)", "mean span >= 1"),
            ("(('r','span',3.0))", "give (name, kind, mean span, density, weight)"),
            ("(('x','span',3.0,0.5,1.0),)", "no row fits")):
        err = one_line_error(capsys, train(UL2, tmp_path / "w",
                                           f"--config.ul2.denoisers={denoisers}",
                                           "--config.data.seq_len=32", "--config.model.max_len=32",
                                           "--config.ul2.targets_length=2"))
        assert "config.ul2" in err and expected in err, err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_run")
    assert main.cli(train(GPT, str(workdir), *TINY)) == 0
    return workdir


@pytest.mark.slow      # trains the tiny run (one step) it evaluates
def test_eval_with_nothing_to_evaluate_is_an_error_not_silence(tiny_run, capsys):
    capsys.readouterr()
    for flag, expected in (("--config.data.val_fraction=0.0", "no held-out split"),
                           ("--config.eval.num_batches=0", "eval.num_batches is 0"),
                           ("--config.eval.num_batches=-2", "config.eval.num_batches")):
        err = one_line_error(capsys, ["eval", "--workdir", tiny_run, flag])
        assert expected in err
    assert main.cli(["eval", "--workdir", str(tiny_run)]) == 0     # the run itself evaluates
    assert "val/loss" in capsys.readouterr().out


def test_tools_refuse_a_corpus_with_no_text_and_save_nothing(tmp_path, capsys):
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n\n\t\n")
    empty = tmp_path / "empty.txt"
    empty.touch()
    out = tmp_path / "tok"
    for corpus, expected in ((blank, "only whitespace"), (empty, "is empty"),
                             (tmp_path, "is a directory")):
        err = one_line_error(capsys, ["tokenizer", "train", "--corpus", corpus, "--out", out])
        assert str(corpus) in err and expected in err
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat\n" * 20)
    err = one_line_error(capsys, ["tokenizer", "train", "--corpus", text, "--kind", "wordpiece",
                                  "--vocab-size", "50", "--out", out])
    assert "no room to learn" in err
    assert not out.exists()                                 # nothing saved by any of them
    err = one_line_error(capsys, ["tokenize", blank, "--tokenizer", "byte", "--out", out])
    assert str(blank) in err and "no documents" in err
    for corpus, expected in ((empty, "is empty"), (blank, "only whitespace")):
        err = one_line_error(capsys, ["ngram", "--text", corpus])
        assert str(corpus) in err and expected in err
    short = tmp_path / "short.txt"
    short.write_text("abcdefgh")
    err = one_line_error(capsys, ["ngram", "--text", short, "--n", "2"])
    assert "val part" in err and "too short" in err


def test_streamed_corpora_of_tokenize_name_the_file_and_the_line(tmp_path, capsys):
    """The readers of ``pretrainx tokenize`` beyond plain text: Parquet, JSONL.gz, JSONL.zst."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard
    numbers, text_file, cut, bad_line = (tmp_path / n for n in (
        "numbers.parquet", "text.parquet", "cut.jsonl.zst", "bad.jsonl.gz"))
    pq.write_table(pa.table({"text": [1, 2, 3]}), numbers)
    text_file.write_text("not parquet\n")
    whole = zstandard.ZstdCompressor().compress(b'{"text": "abc"}\n' * 5000)
    cut.write_bytes(whole[:len(whole) // 2])
    bad_line.write_bytes(gzip.compress(b'{"text": "a"}\n{"text": "b"}\n{"text": \n'))
    for corpus, expected in ((numbers, "column 'text' holds int64, not text"),
                             (text_file, "not a readable Parquet file"),
                             (cut, "truncated or corrupt"),
                             (bad_line, f"{bad_line}:3: not a JSON record")):
        err = one_line_error(capsys, ["tokenize", corpus, "--tokenizer", "byte", "--out",
                                      tmp_path / f"out_{corpus.name}"])
        assert str(corpus) in err and expected in err, err


def test_user_files_of_the_tools_are_one_line_naming_the_file(tmp_path, capsys):
    """A config, a sweep, a registry: Python files of the user's; a Hugging Face folder."""
    config = tmp_path / "c.py"
    config.write_text("def get_config(:\n")
    err = one_line_error(capsys, train(config, tmp_path / "w"))
    assert f"{config}:1: not valid Python" in err
    registry = tmp_path / "registry.py"
    registry.write_text("ENTRIES = [\n    (\n")
    err = one_line_error(capsys, ["reproduce", "--list", "--registry", registry])
    assert f"{registry}:" in err and "not valid Python" in err
    sweep = tmp_path / "sweep.py"
    sweep.write_text(f"from pretrainx.config import load\n"
                     f"from pretrainx.tools import sweep_def as sd\n"
                     f"def get_config(arg=''):\n    return load.load({GPT!r})\n"
                     f"def get_sweep(arg=''):\n"
                     f"    return sd.search({{'optimizer.lr': sd.loguniform(1e-2, 1e-4)}}, "
                     f"trials=2)\n")
    err = one_line_error(capsys, ["sweep", "--config", sweep, "--workdir", tmp_path / "sw"])
    assert "sd.loguniform(0.01, 0.0001)" in err and "low <= high" in err
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "model.safetensors").write_bytes(b"x")
    (hf / "config.json").write_text('{"model_type": "gpt2"\n')
    err = one_line_error(capsys, ["import-hf", hf, "--workdir", tmp_path / "imported"])
    assert f"{hf / 'config.json'}:2:1: not a JSON file" in err
    (hf / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 50,
                                                "n_embd": 32, "n_layer": 1, "n_head": 2,
                                                "n_positions": 32}))
    err = one_line_error(capsys, ["import-hf", hf, "--workdir", tmp_path / "imported"])
    assert f"{hf / 'model.safetensors'}: not a readable safetensors file" in err
    err = one_line_error(capsys, ["import-hf", hf, "--workdir", tmp_path / "imported",
                                  "--config.lora.rank=8"])
    assert "drop --config.lora.rank here" in err
    assert not (tmp_path / "imported").exists() and not (tmp_path / "sw").exists()
