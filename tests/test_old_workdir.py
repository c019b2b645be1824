"""A workdir written before the redesign (issue 20) still resumes, samples and evaluates.

``fixtures/pre_redesign_clm_run`` is a 4-step char GPT (1 layer, width 16) trained by the code of
commit 65dd192, the last before the redesign, with ``checkpoint.keep=1`` so it stays ~450 KB. Its
``config.json`` names the Tiny Shakespeare path of the machine that made it: the test points it at
this checkout's shared data folder, as a user moving a run to another machine would."""
import json
import os
import shutil

import pytest

from pretrainx import main
from conftest import SHARED_DATA

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "pre_redesign_clm_run")
SHAKESPEARE = os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt")


@pytest.fixture
def old_run(tmp_path):
    if not os.path.isfile(SHAKESPEARE):
        pytest.skip("../shared/data is absent")
    workdir = tmp_path / "run"
    shutil.copytree(FIXTURE, workdir)
    config_path = workdir / "config.json"
    config = json.loads(config_path.read_text())
    config["data"]["path"] = SHAKESPEARE
    config_path.write_text(json.dumps(config, indent=2))
    return workdir


def test_old_run_samples_from_its_checkpoint(old_run, capsys):
    assert main.cli(["sample", "--workdir", str(old_run), "--prompt", "RO",
                     "--max-new-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("RO") and len(out.rstrip("\n")) >= 2 + 1


def test_old_run_evaluates_to_its_logged_val_loss(old_run, capsys):
    logged = [json.loads(line) for line in open(old_run / "metrics.jsonl")]
    logged_val = [row["val/loss"] for row in logged if "val/loss" in row][-1]
    assert main.cli(["eval", "--workdir", str(old_run)]) == 0
    printed = dict(line.split() for line in capsys.readouterr().out.splitlines() if " " in line)
    # the same weights on the same validation batches: the loss the old run logged at step 4
    assert float(printed["val/loss"]) == pytest.approx(logged_val, rel=1e-5)


@pytest.mark.slow
def test_old_run_resumes_from_step_4(old_run):
    config = json.loads((old_run / "config.json").read_text())
    assert main.cli(["train", "--config", os.path.join(os.path.dirname(__file__), "..",
                                                         "configs/gpt/shakespeare_char.py:smoke"),
                     "--workdir", str(old_run), *overrides_to(config),
                     "--config.train.steps=6"]) == 0
    rows = [json.loads(line) for line in open(old_run / "metrics.jsonl")]
    assert max(row["step"] for row in rows if "train/loss" in row) == 6
    provenance = json.loads((old_run / "provenance.json").read_text())
    assert [r["resumed_from_step"] for r in provenance["resumes"]] == [4]   # not a fresh start
    assert (old_run / "checkpoints" / "6").is_dir()


def overrides_to(config):
    """``--config.K=V`` flags that turn the smoke recipe into the fixture's own config."""
    flags = []

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif (prefix, key) != ("train.", "steps") and not isinstance(value, list):
                flags.append(f"--config.{prefix}{key}={value}")   # lists: the recipe's own
    walk(config, "")
    return flags
