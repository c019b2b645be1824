"""TFDS text through ArrayRecord data sources, fully offline."""
import os
import time

import pytest

from conftest import SHARED_DATA

pytest.importorskip("tensorflow_datasets")
from pretrainx.data import tfds_text  # noqa: E402

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
