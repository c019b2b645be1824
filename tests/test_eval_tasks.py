"""Evaluation during training: ``eval.tasks`` through lm-evaluation-harness at their own cadence
(``eval.tasks_every``), logged as ``eval/<task>/<metric>``, usable as ``checkpoint.best_metric``
(in the harness's direction), the same after kill -> resume and on 8 devices as on one.

The runs are a 1-layer, 16-wide GPT on the characters of Tiny Shakespeare; the tasks are two
YAML files of the harness's own format over a few documents of the local tasks' rules: a
multiple choice (``acc``, ``acc_norm``) and a cloze (``perplexity``, a continuous number in which
any difference of scoring shows)."""
import json
import math

import jax
import numpy as np
import pytest

import toy_objectives as toys
from pretrainx import main
from pretrainx.config.check import ConfigError
from pretrainx.config.text import SHAKESPEARE, WIKITEXT
from pretrainx.core import local_tasks, train
from pretrainx.core.loop import Cadence, plan_step
from pretrainx.errors import UserError

DOCS = 6    # documents per task: enough to tell the numbers apart, cheap to score
MC, CLOZE = "tiny_nextline", "tiny_cloze"


def task_files(folder) -> str:
    """Two task YAMLs (and their JSONL) in ``folder``: the local tasks' first DOCS documents."""
    folder.mkdir(exist_ok=True)
    for name, source, make, template in ((MC, SHAKESPEARE, local_tasks.nextline_examples,
                                          local_tasks.NEXTLINE_YAML),
                                         (CLOZE, WIKITEXT, local_tasks.cloze_examples,
                                          local_tasks.CLOZE_YAML)):
        with open(source, encoding="utf-8") as f:
            docs = make(f.read())[:DOCS]
        data = folder / f"{name}.jsonl"
        data.write_text("".join(json.dumps(d) + "\n" for d in docs))
        (folder / f"{name}.yaml").write_text(template.format(name=name, data=json.dumps(str(data))))
    return f"{folder / MC}.yaml,{folder / CLOZE}.yaml"


def run_config(tmp_path, **updates):
    """A char GPT trained 6 steps, tasks at steps 4 and 6 (the end), validation at 3 and 6."""
    fields = {"data.path": SHAKESPEARE, "data.tokenizer": "char", "data.max_bytes": 100_000,
              "model.vocab_size": 65, "model.max_len": 64, "data.seq_len": 64,
              "model.dtype": "float32", "train.steps": 6, "optimizer.decay_steps": 6,
              "eval.every": 3, "eval.tasks": task_files(tmp_path / "tasks"),
              "eval.tasks_every": 4, "eval.task_dir": str(tmp_path / "cache"),
              "checkpoint.every": 2}
    fields.update(updates)
    return toys.config("clm", **fields)


def task_rows(history) -> dict[int, dict]:
    return {h["step"]: {k: v for k, v in h.items() if k.startswith("eval/")}
            for h in history if any(k.startswith("eval/") for k in h)}


def test_tasks_run_at_their_own_cadence_and_at_the_end():
    every_4 = Cadence(total=10, log_every=1, eval_every=3, save_every=5, tasks_every=4)
    assert [n for n in range(1, 11) if plan_step(n, every_4).tasks] == [4, 8, 10]
    # a task step is an eval step (its row has val/* too); validation keeps its own steps
    assert [n for n in range(1, 11) if plan_step(n, every_4).evaluate] == [3, 4, 6, 8, 9, 10]
    at_end = Cadence(total=10, log_every=1, eval_every=0, save_every=5, tasks_every=0)
    assert [n for n in range(1, 11) if plan_step(n, at_end).tasks] == [10]
    none = Cadence(total=10, log_every=1, eval_every=3, save_every=5)   # eval.tasks = ""
    assert not any(plan_step(n, none).tasks for n in range(1, 11))
    assert not plan_step(8, every_4, preempted=True).tasks      # SIGTERM: save and stop
    assert not plan_step(8, every_4).eval_interrupted().tasks


@pytest.mark.slow
def test_task_metrics_survive_kill_and_resume_and_rank_the_best_checkpoint(tmp_path):
    cfg = run_config(tmp_path, **{"checkpoint.best_metric": f"eval/{CLOZE}/acc",
                                  "checkpoint.best_mode": "max"})
    full = train.run(cfg, str(tmp_path / "full"))
    rows = task_rows(full.history)
    assert sorted(rows) == [4, 6]
    assert set(rows[6]) == {f"eval/{MC}/acc", f"eval/{MC}/acc_norm", f"eval/{CLOZE}/acc",
                            f"eval/{CLOZE}/perplexity"}
    assert math.isfinite(rows[6][f"eval/{CLOZE}/perplexity"])
    # the model learns: the cloze targets get likelier between the two task evals
    assert rows[6][f"eval/{CLOZE}/perplexity"] < rows[4][f"eval/{CLOZE}/perplexity"]
    with open(tmp_path / "full" / "metrics.jsonl") as f:    # the same rows on disk
        on_disk = task_rows(json.loads(line) for line in f)
    assert on_disk == rows
    assert (tmp_path / "full" / "checkpoints_best").is_dir()
    # killed after step 5 (saved at 4, with its task eval), resumed: the same numbers at step 6
    killed = train.run(cfg, str(tmp_path / "killed"), stop_after=5)
    assert killed.stopped_early and sorted(task_rows(killed.history)) == [4]
    resumed = train.run(cfg, str(tmp_path / "killed"))
    assert task_rows(resumed.history) == {6: rows[6]}
    assert task_rows(killed.history)[4] == rows[4]


@pytest.mark.slow
def test_tasks_on_8_devices_score_as_on_one(tmp_path):
    one = task_rows(train.run(run_config(tmp_path, **{"mesh.data": 1, "eval.every": 0,
                                                      "train.steps": 4}),
                              str(tmp_path / "one")).history)
    eight = task_rows(train.run(run_config(tmp_path, **{"mesh.data": -1, "eval.every": 0,
                                                        "train.steps": 4}),
                                str(tmp_path / "eight")).history)
    assert jax.device_count() == 8 and sorted(one) == sorted(eight) == [4]
    assert one[4].keys() == eight[4].keys()
    for key, value in one[4].items():     # training sums its gradients in another order
        np.testing.assert_allclose(eight[4][key], value, rtol=1e-4, err_msg=key)


@pytest.mark.slow
def test_a_task_metric_ranked_the_wrong_way_stops_at_its_first_eval(tmp_path):
    cfg = run_config(tmp_path, **{"checkpoint.best_metric": f"eval/{MC}/acc",
                                  "checkpoint.best_mode": "min", "train.steps": 2,
                                  "eval.every": 1, "eval.tasks_every": 2})
    with pytest.raises(ConfigError, match=r"'eval/tiny_nextline/acc' is higher-is-better "
                                          r".*--config.checkpoint.best_mode=max"):
        train.run(cfg, str(tmp_path / "run"))


@pytest.mark.slow
def test_bad_tasks_are_one_line_before_training(tmp_path, capsys):
    cfg = run_config(tmp_path, **{"eval.tasks": "no_such_task"})
    with pytest.raises(UserError, match="unknown task 'no_such_task'"):
        train.run(cfg, str(tmp_path / "unknown"))
    assert not (tmp_path / "unknown" / "checkpoints").exists() or not any(
        (tmp_path / "unknown" / "checkpoints").iterdir())
    # a masked model scores no continuation: refused from the command line, exit 2
    bert = ["train", "--config", "configs/bert/bert_base.py:smoke", "--workdir",
            str(tmp_path / "bert"), "--config.train.steps=1", "--config.train.progress=False",
            f"--config.eval.tasks={tmp_path / 'tasks' / MC}.yaml"]
    assert main.cli(bert) == 2
    assert "bidirectional (masked) model" in capsys.readouterr().err
