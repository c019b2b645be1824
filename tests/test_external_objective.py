"""A new objective is one file plus a config: tests/external_objective.py, named by its path in
its own config, trains and samples through the CLI with nothing else in the package changed."""
import json
import math
import os

from pretrainx import main

HERE = os.path.dirname(os.path.abspath(__file__))
FILE = os.path.join(HERE, "external_objective.py")


def _train_losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return [r["train/loss"] for r in rows if "train/loss" in r]


def test_an_objective_from_a_file_of_its_own_trains_and_samples_through_the_cli(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    assert main.cli(["train", "--config", FILE, "--workdir", workdir]) == 0
    saved = json.load(open(os.path.join(workdir, "config.json")))
    assert saved["objective"] == f"{FILE}:toy_bigram"
    trained = _train_losses(workdir)
    # it learns the byte bigrams: far below a uniform guess over 256 bytes, and still falling
    assert trained[-1] < min(trained[0], math.log(256) - 2.0), trained
    capsys.readouterr()

    # the flags are the objective's own, declared in its file
    assert main.cli(["sample", "--workdir", workdir, "--help"]) == 0
    listed = capsys.readouterr().out
    assert "--start" in listed and "--length" in listed and "--prompt" not in listed
    assert main.cli(["sample", "--workdir", workdir, "--start", "d", "--length", "6"]) == 0
    chain = capsys.readouterr().out.rstrip("\n")
    assert chain.startswith("d") and len(chain) == 7
    assert main.cli(["sample", "--workdir", workdir, "--prompt", "x"]) == 2
    err = capsys.readouterr().err
    assert "takes no '--prompt'" in err and "--start, --length" in err


def test_a_file_objective_the_file_does_not_register_or_a_missing_file_is_one_clear_error(tmp_path):
    import pytest
    from pretrainx import objectives
    with pytest.raises(ValueError, match="registers no objective 'nothing_here'"):
        objectives.get(f"{FILE}:nothing_here")
    with pytest.raises(FileNotFoundError, match="not a file"):
        objectives.get(f"{tmp_path}/absent.py:toy")


def test_another_class_under_a_taken_name_is_refused():
    import pytest
    from pretrainx.objectives import Objective, register
    with pytest.raises(ValueError, match="'clm' registered twice"):
        @register("clm")
        class Impostor(Objective):
            pass
