"""lm-evaluation-harness adapter: its per-request log-likelihoods are pretrainx's own scoring of
the same strings (the objective's ``loss_fn`` on one unpadded row, its NLL times its token count)
to 1e-5 in float32, for a causal and a prefix LM."""
import os

import jax
import numpy as np
import pytest
from lm_eval.api.instance import Instance

import specs
from pretrainx.config import load as config_lib
from pretrainx.objectives.base import DENOMINATOR
from pretrainx.objectives.clm import CausalLM
from pretrainx.objectives.prefix_lm import PrefixLM
from pretrainx.tools.harness import PretrainxLM

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
    objective = specs.built(cls, config, CHARS)
    return objective, objective.init(jax.random.PRNGKey(0))


def own_logprob(objective, params, context: str, continuation: str) -> float:
    """log p(continuation | context) by the objective's own loss on one row of exactly these
    tokens: the NLL it reports times the tokens it averaged over."""
    tok = objective.tokenizer
    # the harness's rule (TemplateLM._encode_pair): a context's trailing spaces are scored as the
    # continuation's start
    spaces = len(context) - len(context.rstrip())
    context, continuation = context[:len(context) - spaces], context[len(context) - spaces:] + continuation
    ctx_ids = tok.encode(context) or tok.encode("\n")
    ids = (ctx_ids + tok.encode(continuation))[-(objective.model_config.max_len + 1):]
    n_cont = len(tok.encode(continuation))
    inputs, targets = np.asarray([ids[:-1]], np.int32), np.asarray([ids[1:]], np.int32)
    weights = np.zeros(inputs.shape, np.float32)
    weights[0, -n_cont:] = 1.0
    batch = {"inputs": inputs, "targets": targets, "weights": weights}
    if isinstance(objective, PrefixLM):
        batch["prefix_length"] = np.asarray([inputs.shape[1] - n_cont + 1], np.int32)
    _, metrics = objective.loss_fn(params, batch, None, train=False, frozen={})
    assert float(metrics[DENOMINATOR]) == n_cont
    return -float(metrics["nll"]) * n_cont


@pytest.mark.parametrize("recipe,cls", [("configs/gpt/shakespeare_char.py:smoke", CausalLM),
                                        ("configs/ul2/prefix_lm_char.py:smoke", PrefixLM)])
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
    assert rolling[0] == pytest.approx(own_logprob(objective, params, "", text), abs=1e-5)


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
