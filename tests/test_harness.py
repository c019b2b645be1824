"""lm-evaluation-harness adapter: its per-request log-likelihoods are pretrainx's own scoring of
the same strings (the objective's ``loss_fn`` on one unpadded row, its NLL times its token count)
to 1e-5 in float32, for a causal LM, a prefix LM and two encoder-decoders (T5, UL2)."""
import os

import jax
import numpy as np
import pytest
from lm_eval.api.instance import Instance

import specs
from pretrainx.config import load as config_lib
from pretrainx.objectives.base import DENOMINATOR
from pretrainx.objectives.clm import CausalLM
from pretrainx.data import special_tokens as st
from pretrainx.objectives.encoder_decoder import EncoderDecoderObjective
from pretrainx.objectives.prefix_lm import PrefixLM
from pretrainx.objectives.span_corruption import SpanCorruption
from pretrainx.objectives.ul2 import UL2
from pretrainx.core.harness import PretrainxLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHARS = "\n !',.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
TINY = {"model.num_layers": 2, "model.num_heads": 2, "model.embed_dim": 32, "model.max_len": 32,
        "data.seq_len": 32, "model.vocab_size": len(CHARS), "model.dtype": "float32"}

# (context, continuation): a short one, an empty context (conditioned on "\n"), a continuation
# with its word-boundary space, one whose context is longer than the model (cut from the left)
REQUESTS = [("ROMEO:", " I will"), ("", "Good morrow"), ("First Citizen:\nBefore we", " proceed"),
            ("All:\nSpeak, speak. " * 4, "You are all resolved")]


def objective_and_params(recipe: str, cls):
    config = config_lib.override(config_lib.load(os.path.join(ROOT, recipe)), TINY)
    spec = specs.char_spec(cls, config, CHARS)
    config.model.vocab_size = spec.tokenizer.vocab_size     # the characters + cls's specials
    objective = cls(config, spec)
    return objective, objective.init(jax.random.PRNGKey(0))


def own_logprob(objective, params, context: str, continuation: str) -> float:
    """log p(continuation | context) by the objective's own loss on one row of exactly these
    tokens: the NLL it reports times the tokens it averaged over."""
    tok = objective.tokenizer
    # the harness's rule (TemplateLM._encode_pair): a context's trailing spaces are scored as the
    # continuation's start
    spaces = len(context) - len(context.rstrip())
    context, continuation = context[:len(context) - spaces], context[len(context) - spaces:] + continuation
    # an empty context: the vocabulary's EOS where it has one, else a newline (the adapter's rule)
    empty = [tok.token_id(st.EOS)] if tok.has_token(st.EOS) else tok.encode("\n")
    ctx_ids = tok.encode(context) or empty
    ids = (ctx_ids + tok.encode(continuation))[-(objective.model_config.max_len + 1):]
    n_cont = len(tok.encode(continuation))
    if isinstance(objective, EncoderDecoderObjective):
        batch = seq2seq_row(objective, ctx_ids, tok.encode(continuation))
    else:
        inputs, targets = np.asarray([ids[:-1]], np.int32), np.asarray([ids[1:]], np.int32)
        weights = np.zeros(inputs.shape, np.float32)
        weights[0, -n_cont:] = 1.0
        batch = {"inputs": inputs, "targets": targets, "weights": weights}
    if isinstance(objective, PrefixLM):
        batch["prefix_length"] = np.asarray([inputs.shape[1] - n_cont + 1], np.int32)
    _, metrics = jitted_loss(objective)(params, batch)
    assert float(metrics[DENOMINATOR]) == n_cont
    return -float(metrics["nll"]) * n_cont


_JITTED = {}


def jitted_loss(objective):
    """The objective's loss_fn, compiled once per row length (op by op it took ~1.5 s a row)."""
    if id(objective) not in _JITTED:
        _JITTED[id(objective)] = (objective, jax.jit(
            lambda params, batch: objective.loss_fn(params, batch, None, train=False, frozen={})))
    return _JITTED[id(objective)][1]


def seq2seq_row(objective, context_ids, continuation_ids):
    """T5's one row: the context encoded (behind UL2's [S2S] mode token where the vocabulary has
    it, then EOS, the last max_len tokens), the continuation as teacher-forced targets."""
    tok = objective.tokenizer
    mode = [tok.token_id(st.S2S)] if tok.has_token(st.S2S) else []
    keep = objective.model_config.max_len - len(mode) - 1
    inputs = np.asarray([mode + context_ids[-keep:] + [objective.eos_id]], np.int32)
    targets = np.asarray([continuation_ids], np.int32)
    row = {"inputs": inputs, "targets": targets, "weights": np.ones(targets.shape, np.float32),
           "decoder_inputs": objective.shift_right(targets)}
    if isinstance(objective, UL2):      # which denoiser made the row: only its component metrics
        row["denoiser"] = np.zeros((1,), np.int32)
    return row


@pytest.mark.parametrize("recipe,cls", [("configs/gpt/shakespeare_char.py:smoke", CausalLM),
                                        # ~15-20 s of CPU each: in the slow set
                                        pytest.param("configs/ul2/prefix_lm_char.py:smoke", PrefixLM,
                                                     marks=pytest.mark.slow),
                                        pytest.param("configs/t5/t5_small.py:smoke", SpanCorruption,
                                                     marks=pytest.mark.slow),
                                        pytest.param("configs/ul2/ul2_small.py:smoke", UL2,
                                                     marks=pytest.mark.slow)])
@pytest.mark.slow      # 15-35 s on 2 cores: out of the -m 'not slow' set's 10 min
def test_adapter_loglikelihoods_equal_pretrainx_scoring(recipe, cls):
    objective, params = objective_and_params(recipe, cls)
    lm = PretrainxLM(objective, params, batch_size=3)      # 4 requests: two padded batches
    got = lm.loglikelihood([Instance("loglikelihood", {}, r, i) for i, r in enumerate(REQUESTS)],
                           disable_tqdm=True)
    for (context, continuation), (logprob, _) in zip(REQUESTS, got):
        assert logprob == pytest.approx(own_logprob(objective, params, context, continuation),
                                        abs=1e-5, rel=1e-6), (context, continuation)
    # the rolling log-likelihood of a string that fits the model: every token given "\n"
    text = "Speak, speak."
    rolling = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0)],
                                       disable_tqdm=True)
    assert rolling[0] == pytest.approx(own_logprob(objective, params, "", text), abs=1e-5, rel=1e-6)


def test_generate_until_is_greedy_and_stops_at_the_stop_string():
    objective, params = objective_and_params("configs/gpt/shakespeare_char.py:smoke", CausalLM)
    lm = PretrainxLM(objective, params, batch_size=2)
    free, = lm.generate_until([Instance("generate_until", {}, ("ROMEO:", {"max_gen_toks": 12}), 0)])
    assert len(free) == 12
    # greedy: each generated token is the argmax, so each is_greedy continuation scores as such
    _, is_greedy = lm.loglikelihood([Instance("loglikelihood", {}, ("ROMEO:", free), 0)],
                                    disable_tqdm=True)[0]
    assert is_greedy
    stop = free[5]
    cut, = lm.generate_until([Instance("generate_until", {}, ("ROMEO:", {"max_gen_toks": 12,
                                                                         "until": [stop]}), 0)])
    assert cut == free[:free.index(stop)]


@pytest.mark.slow
def test_local_tasks_through_the_cli_score_as_pretrainx_does(tmp_path, capsys):
    import json
    import math
    import shutil
    import toy_objectives as toys
    from pretrainx import main
    from pretrainx.config.text import SHAKESPEARE
    from pretrainx.core import inference, train
    from pretrainx.core import local_tasks
    run = tmp_path / "run"
    train.run(toys.config("clm", **{"data.path": SHAKESPEARE, "data.tokenizer": "char",
                                    "model.vocab_size": 65, "model.max_len": 128,
                                    "model.dtype": "float32", "train.steps": 2,
                                    "checkpoint.every": 2}), str(run))
    # a task given as a YAML path: the local cloze under another name, in a folder of its own
    tasks = local_tasks.build(str(tmp_path / "tasks"), [local_tasks.CLOZE])
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(f"{tasks}/{local_tasks.CLOZE}.jsonl", mine / "cloze.jsonl")
    (mine / "my_cloze.yaml").write_text(
        (tmp_path / "tasks" / f"{local_tasks.CLOZE}.yaml").read_text()
        .replace(f"task: {local_tasks.CLOZE}", "task: my_cloze")
        .replace(f"{tasks}/{local_tasks.CLOZE}.jsonl", str(mine / "cloze.jsonl")))
    argv = ["eval", "--workdir", str(run), "--limit", "4", "--task-dir", tasks,
            "--tasks", f"{local_tasks.NEXTLINE},{mine / 'my_cloze.yaml'}"]
    assert main.cli(argv) == 0
    got = dict(line.split() for line in capsys.readouterr().out.splitlines() if "/" in line)
    objective, ctx, _ = inference.load_trained_run(str(run), "latest")
    own = lambda c, x: own_logprob(objective, ctx.params, c, x)
    docs = lambda name: [json.loads(line) for line in open(f"{tasks}/{name}.jsonl")][:4]
    # multiple choice: the choice pretrainx scores highest, against the label
    acc = np.mean([np.argmax([own(d["context"], c) for c in d["choices"]]) == d["label"]
                   for d in docs(local_tasks.NEXTLINE)])
    assert float(got[f"{local_tasks.NEXTLINE}/acc"]) == pytest.approx(acc)
    # the cloze's perplexity: exp of minus the mean log-likelihood of the targets
    lls = [own(d["context"], d["target"]) for d in docs(local_tasks.CLOZE)]
    assert float(got["my_cloze/perplexity"]) == pytest.approx(math.exp(-np.mean(lls)), rel=1e-5)
    assert main.cli(argv[:-1] + [str(mine / "no_such_task.yaml")]) == 2      # one line, no traceback
    assert capsys.readouterr().err.strip() == (f"pretrainx: error: FileNotFoundError: task file "
                                               f"not found: {mine / 'no_such_task.yaml'} (--tasks)")
