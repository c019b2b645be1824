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


@pytest.mark.slow
def test_a_trained_run_exported_scores_in_the_hf_backend_as_in_the_adapter(tmp_path):
    """A GPT trained here (byte-level BPE on Tiny Shakespeare, 20 steps), exported: the harness's
    HF backend and the adapter give every request the same log-likelihood (to 1e-4 nats: float32
    in two frameworks) and greediness, and the local tasks the same accuracy."""
    import json

    import numpy as np
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    import toy_objectives as toys
    from pretrainx.data import special_tokens as st
    from pretrainx.config.text import SHAKESPEARE
    from pretrainx.core import inference, train
    run, out, tasks = (str(tmp_path / n) for n in ("run", "export", "tasks"))
    train.run(toys.config("clm", **{"data.path": SHAKESPEARE, "data.tokenizer": "bpe:400",
                                    "data.max_bytes": 200_000, "model.vocab_size": 400,
                                    "model.max_len": 64, "data.seq_len": 64,
                                    "model.embed_dim": 32, "model.num_layers": 2,
                                    "model.dtype": "float32", "model.use_bias": True,   # GPT-2's shape
                                    "train.steps": 20,
                                    "optimizer.lr": 3e-3, "optimizer.decay_steps": 20,
                                    "checkpoint.every": 20}), run)
    assert main.cli(["export-hf", "--workdir", run, "--out", out]) == 0
    objective, ctx, _ = inference.load_trained_run(run, "latest")
    ours = harness.PretrainxLM(objective, ctx.params, batch_size=8)
    # the export names the vocabulary's EOS as eos_token: the HF backend's prefix token, which
    # the adapter also conditions an empty context on
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.eos_token == st.EOS
    theirs = HFLM(pretrained=out, tokenizer=tokenizer, dtype="float32", device="cpu", batch_size=8)
    names = [local_tasks.NEXTLINE, local_tasks.CLOZE]
    local_tasks.build(tasks, names)
    requests = []
    for name in names:
        for doc in [json.loads(line) for line in open(f"{tasks}/{name}.jsonl")][:LIMIT]:
            requests += [(doc["context"], c) for c in doc.get("choices", [doc.get("target")])]
    instances = [Instance("loglikelihood", {}, r, i) for i, r in enumerate(requests)]
    mine, hf = ours.loglikelihood(instances, disable_tqdm=True), theirs.loglikelihood(instances)
    gap = max(abs(a[0] - b[0]) for a, b in zip(mine, hf))
    print(f"{len(requests)} requests: largest log-likelihood gap {gap:.2e} nats")
    assert gap < 1e-4 and [a[1] for a in mine] == [b[1] for b in hf]
    assert np.std([a[0] for a in mine]) > 1.0      # the requests are told apart: a real check
    ours_acc = harness.evaluate_tasks(ours, names, task_dir=tasks, limit=LIMIT)
    theirs_acc = harness.evaluate_tasks(theirs, names, task_dir=tasks, limit=LIMIT)
    print(f"pretrainx adapter {ours_acc}; harness HF backend {theirs_acc}")
    for name in names:
        for metric, value in theirs_acc[name].items():
            assert ours_acc[name][metric] == pytest.approx(value, rel=1e-4), (name, metric)
