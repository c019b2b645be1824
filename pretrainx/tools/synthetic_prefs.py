"""Offline RLHF demonstration: a fixed, known scoring rule on text stands in for human raters.

The rule is VADER's lexicon sentiment (the ``compound`` score in [−1, 1] of the ``vaderSentiment``
package): cheap, deterministic and not trivially gamed by a char model (it needs real words;
repeated positive words and "!!!" do raise it, which is why the degeneracy checks below are
reported beside it).

``pretrainx pairs --workdir PRETRAINED --out pairs.jsonl`` samples ``--samples`` continuations
of each of ``--prompts`` windows of the run's *training* text from the pretrained policy, scores
the responses with the rule and writes one plain {prompt, chosen, rejected} pair per prompt (the
best and the worst response; prompts whose responses all tie are skipped). The reward and DPO
stages learn from these pairs; the held-out evaluation prompts come from the validation text.
"""
from __future__ import annotations

import argparse
import functools
import json
import logging

import jax
import numpy as np

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    return SentimentIntensityAnalyzer()


def true_score(texts: list[str]) -> np.ndarray:
    """VADER's compound sentiment of each text: the demonstration's ground truth."""
    analyzer = _analyzer()
    return np.asarray([analyzer.polarity_scores(t)["compound"] for t in texts], np.float64)


def distinct_2(texts: list[str]) -> float:
    """Distinct character bigrams over all bigrams of the texts (1: no repetition at all)."""
    grams = [t[i:i + 2] for t in texts for i in range(len(t) - 1)]
    return len(set(grams)) / max(len(grams), 1)


def repeated_token_share(texts: list[str]) -> float:
    """Share of words that repeat an earlier word of the same response (degenerate loops)."""
    repeated = total = 0
    for t in texts:
        words = t.split()
        repeated += len(words) - len(set(words))
        total += len(words)
    return repeated / max(total, 1)


def bootstrap_diff(a: np.ndarray, b: np.ndarray, *, samples: int = 2000, seed: int = 0):
    """(mean(a) − mean(b), its bootstrap 95 % interval), resampling each side independently."""
    rng = np.random.default_rng(seed)
    diffs = [rng.choice(a, len(a)).mean() - rng.choice(b, len(b)).mean() for _ in range(samples)]
    return float(a.mean() - b.mean()), tuple(float(x) for x in np.percentile(diffs, [2.5, 97.5]))


def prompt_windows(tokens: np.ndarray, count: int, length: int, seed: int) -> np.ndarray:
    """``count`` windows of ``length`` tokens at seeded random starts of a token stream."""
    starts = np.random.default_rng(seed).integers(0, len(tokens) - length, count)
    return np.stack([tokens[s:s + length] for s in starts]).astype(np.int32)


def sample_responses(model_config, params, prompts: np.ndarray, *, max_new_tokens: int, seed: int,
                     temperature: float = 1.0, chunk: int = 256):
    """Token ids of one sampled response per prompt row (the policy's own samples)."""
    from pretrainx.models import decoding, gpt
    out = []
    for i in range(0, len(prompts), chunk):    # past the context: the sliding window of generate
        decoded = decoding.generate(gpt.GPTDecoder(model_config), params, prompts[i:i + chunk],
                                    max_new_tokens, temperature=temperature,
                                    rng=jax.random.fold_in(jax.random.PRNGKey(seed), i))
        out.append(np.asarray(decoded.tokens))
    return np.concatenate(out)


def make_pairs(workdir: str, out: str, *, prompts: int, samples: int, prompt_len: int,
               max_new_tokens: int, seed: int) -> dict:
    from pretrainx.core import inference, train
    objective, ctx, config = inference.load_trained_run(workdir, "latest")
    tokenizer = objective.tokenizer
    data = train.build_dataset(config, type(objective), workdir)
    windows = prompt_windows(data.train.tokens, prompts, prompt_len, seed)
    rows = np.repeat(windows, samples, axis=0)
    responses = sample_responses(objective.model_config, ctx.params, rows,
                                 max_new_tokens=max_new_tokens, seed=seed)
    texts = [tokenizer.decode(r.tolist()) for r in responses]
    scores = true_score(texts).reshape(prompts, samples)
    written = 0
    with open(out, "w") as f:
        for p in range(prompts):
            hi, lo = int(np.argmax(scores[p])), int(np.argmin(scores[p]))
            if scores[p, hi] == scores[p, lo]:
                continue        # a tie says nothing about preference
            f.write(json.dumps({"prompt": tokenizer.decode(windows[p].tolist()),
                                "chosen": texts[p * samples + hi],
                                "rejected": texts[p * samples + lo],
                                "scores": [float(scores[p, hi]), float(scores[p, lo])]}) + "\n")
            written += 1
    stats = {"prompts": prompts, "pairs": written, "mean_score": float(scores.mean()),
             "share_nonzero": float((scores != 0).mean())}
    log.info("wrote %d pairs to %s (%s)", written, out, stats)
    return stats


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="pretrainx pairs", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True, help="the pretrained policy's run")
    p.add_argument("--out", required=True, help="JSONL of {prompt, chosen, rejected}")
    p.add_argument("--prompts", type=int, default=4000)
    p.add_argument("--samples", type=int, default=4, help="responses per prompt")
    p.add_argument("--prompt-len", type=int, default=16, dest="prompt_len")
    p.add_argument("--max-new-tokens", type=int, default=48, dest="max_new_tokens")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(json.dumps(make_pairs(args.workdir, args.out, prompts=args.prompts, samples=args.samples,
                                prompt_len=args.prompt_len, max_new_tokens=args.max_new_tokens,
                                seed=args.seed)))
    return 0
