"""The training loop reads a TFDS data set (array_record through tfds.data_source, no TensorFlow)
prepared offline from a local file."""
import os

from pretrainx.config import load as config_lib

from pretrainx.core import train
from pretrainx.data import readers, tfds_text

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))


def test_train_loop_reads_a_tfds_dataset_prepared_offline(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(readers.read_corpus("stdlib", max_bytes=60_000))
    data_dir = tmp_path / "tfds"
    tfds_text.prepare_text_dataset(str(corpus), str(data_dir), name="stdlib_text")
    c = config_lib.load(os.path.join(ROOT, "configs/gpt/shakespeare_char.py:smoke"))
    c = config_lib.override(c, {
        "data.tfds_name": "stdlib_text", "data.tfds_data_dir": str(data_dir),
        "data.path": str(tmp_path / "not_read.txt"), "data.tokenizer": "byte",
        "model.vocab_size": 256, "model.num_layers": 1, "model.embed_dim": 32, "model.num_heads": 2,
        "train.steps": 2, "train.progress": False, "eval.every": 0, "checkpoint.every": 2,
        "mesh.data": 1})
    result = train.run(c, str(tmp_path / "run"))
    assert int(result.state.step) == 2
    # every split, in order, is the corpus again: TFDS 90/5/5 -> val_fraction's 90/10
    built = train.data_lib.build(c.data, batch_size=8, eval_batch_size=8, seq_len=64, seed=0)
    assert built.info["chars"] == len(corpus.read_text())
