"""Issue 23's parity line: lm-evaluation-harness's own Hugging Face backend on an exported model
and the pretrainx adapter on the run give the same task scores.

A tiny random GPT-2 made with transformers (tests/hf_checkpoints.py) is imported as a run and
exported again; the harness's ``HFLM`` scores the exported folder, ``pretrainx eval --tasks``
scores the run, on both local tasks: the next-line choice's accuracies must be equal and the
cloze's perplexity (a continuous number: any difference in scoring shows) equal to 1e-4.
"""
import pytest

from pretrainx import main
from pretrainx.core import harness, local_tasks
from tests import hf_checkpoints as hfc

LIMIT = 40


@pytest.mark.slow
def test_the_harness_hf_backend_on_the_export_scores_as_the_adapter_on_the_run(tmp_path, capsys):
    from lm_eval.models.huggingface import HFLM
    hf_dir, run, out, tasks = (str(tmp_path / n) for n in ("hf", "run", "export", "tasks"))
    hfc.make_model("gpt2", hf_dir)
    assert main.cli(["import-hf", hf_dir, "--workdir", run]) == 0
    assert main.cli(["export-hf", "--workdir", run, "--out", out]) == 0
    capsys.readouterr()
    names = [local_tasks.NEXTLINE, local_tasks.CLOZE]
    assert main.cli(["eval", "--workdir", run, "--tasks", ",".join(names),
                     "--limit", str(LIMIT), "--task-dir", tasks]) == 0
    ours = dict(line.split() for line in capsys.readouterr().out.splitlines() if "/" in line)
    theirs = harness.evaluate_tasks(HFLM(pretrained=out, dtype="float32", device="cpu", batch_size=8),
                                    names, task_dir=tasks, limit=LIMIT)
    print(f"pretrainx adapter {ours}; harness HF backend {theirs}")
    nextline, cloze = theirs[local_tasks.NEXTLINE], theirs[local_tasks.CLOZE]
    assert float(ours[f"{local_tasks.NEXTLINE}/acc"]) == pytest.approx(nextline["acc"])
    assert float(ours[f"{local_tasks.NEXTLINE}/acc_norm"]) == pytest.approx(nextline["acc_norm"])
    assert float(ours[f"{local_tasks.CLOZE}/perplexity"]) == pytest.approx(cloze["perplexity"], rel=1e-4)
