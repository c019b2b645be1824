"""The GPT-2, BERT and T5 recipes' ``shards`` variant: ``:shards,smoke`` trains on a folder that
``pretrainx tokenize`` made from Tiny Shakespeare in the test, and learns as the text smokes do."""
import os

import pytest

from pretrainx.config import load as config_lib
from pretrainx.core import train
from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.tools import tokenize_corpus
from conftest import SHARED_DATA

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
SHAKESPEARE = os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt")
pytestmark = pytest.mark.skipif(not os.path.exists(SHAKESPEARE), reason="../shared/data absent")

#: recipe -> the tokenizer its smoke reads Tiny Shakespeare with
RECIPES = {"configs/gpt/gpt2_124m.py": "byte", "configs/bert/bert_base.py": "char",
           "configs/t5/t5_small.py": "char"}


def _shards(tmp_path, kind: str) -> str:
    tokenizer = "byte"
    if kind == "char":            # the smoke's tokenizer: the corpus's characters
        text = open(SHAKESPEARE, encoding="utf-8").read()
        tokenizer = tokenizer_lib.from_spec("char", text).save(str(tmp_path))
    out = str(tmp_path / f"shards_{kind}")
    assert tokenize_corpus.main([SHAKESPEARE, "--tokenizer", tokenizer, "--out", out,
                                 "--doc-separator", "\n\n", "--val-fraction", "0.1"]) == 0
    return out


def test_the_shards_variant_reads_a_shards_folder_and_keeps_the_rest_of_the_recipe():
    for recipe in RECIPES:
        plain = config_lib.load(os.path.join(ROOT, recipe)).to_dict()
        on_shards = config_lib.load(os.path.join(ROOT, recipe) + ":shards").to_dict()
        assert on_shards["data"]["kind"] == "shards"
        assert on_shards["data"]["path"].endswith(os.path.join("workdirs", "shards",
                                                               recipe.split("/")[1].replace("gpt", "gpt2")))
        assert {k: v for k, v in on_shards.items() if k != "data"} == \
            {k: v for k, v in plain.items() if k != "data"}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_shards_smoke_learns(recipe, tmp_path):
    folder = _shards(tmp_path, RECIPES[recipe])
    c = config_lib.load(os.path.join(ROOT, recipe) + ":shards,smoke")
    c = config_lib.override(c, {"data.path": folder, "train.progress": False, "mesh.data": 1,
                                "eval.every": c.train.steps, "eval.num_batches": 4})
    result = train.run(c, str(tmp_path / "run"))
    losses = [h["train/loss"] for h in result.history if "train/loss" in h]
    val = [h["val/loss"] for h in result.history if "val/loss" in h]
    assert int(result.state.step) == c.train.steps and val
    assert losses[-1] < 0.85 * losses[0], losses          # learns, as the text smokes do
    assert val[-1] < losses[0], (val, losses[0])
