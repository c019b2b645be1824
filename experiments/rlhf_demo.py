"""Issue 10's offline demonstration, evaluated: the true (VADER) score against KL to the reference
for the reference policy, PPO runs, DPO runs and best-of-N against the reward model.

  python experiments/rlhf_demo.py --pretrain W/pretrain --reward W/reward \\
      --ppo W/ppo_b0.02 W/ppo_b0.1 --dpo W/dpo_b0.1 W/dpo_b0.5 --best-of 2 4 8 16 \\
      --samples 512 --out experiments/rlhf_results.json --plot experiments/figures/rlhf_score_vs_kl.png

Every method answers the same ``--samples`` held-out prompts (windows of the pretraining run's
*validation* text; the pairs were made from its training text). For a policy, KL is the mean over
its samples of Σ_t log π(y_t) − log π_ref(y_t) (the sampled-sequence estimate of KL(π ‖ π_ref),
temperature 1); for best-of-N it is the analytic log N − (N − 1)/N (Stiennon et al. 2020). Each
gain over the reference comes with a bootstrap 95 % interval (prompts resampled), and beside the
score the degeneracy checks: distinct character bigrams and the share of repeated words.
"""
from __future__ import annotations

import argparse
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.core import inference, train
from pretrainx.models import gpt
from pretrainx.objectives import lm_utils
from pretrainx.tools.synthetic_prefs import (bootstrap_diff, distinct_2, prompt_windows,
                                       repeated_token_share, sample_responses, true_score)


def sequence_kl(model_config, policy, reference, rows: np.ndarray, prompt_len: int) -> np.ndarray:
    """Σ over each response of log π − log π_ref at its sampled tokens (temperature 1)."""
    model = gpt.GPT(model_config)

    @jax.jit
    def kl(p, r, x):
        lp, _ = lm_utils.token_logprobs(model.apply({"params": p}, x), x)
        lr, _ = lm_utils.token_logprobs(model.apply({"params": r}, x), x)
        return (lp - lr)[:, prompt_len:].sum(-1)
    return np.concatenate([np.asarray(kl(policy, reference, jnp.asarray(rows[i:i + 256])))
                           for i in range(0, len(rows), 256)])


POOL = {"pool": "last"}     # the reward run's reward.pool, set in main()


def reward_scores(model_config, params, rows: np.ndarray) -> np.ndarray:
    scalar = gpt.GPTScalar(model_config)
    fn = jax.jit(lambda p, x: lm_utils.reward_scores(scalar, p, x, jnp.ones(x.shape, bool),
                                                     pool=POOL["pool"]))
    return np.concatenate([np.asarray(fn(params, jnp.asarray(rows[i:i + 256])))
                           for i in range(0, len(rows), 256)])


def summarise(name, texts, scores, reference_scores, kl, rm=None, **extra):
    gain, interval = bootstrap_diff(scores, reference_scores)
    out = {"method": name, "true_score": float(scores.mean()), "gain": gain,
           "gain_95": list(interval), "kl": float(kl), "distinct_2": distinct_2(texts),
           "repeated_words": repeated_token_share(texts), "n": int(len(scores)), **extra}
    if rm is not None:
        out["reward_model_score"] = float(np.mean(rm))
    print(json.dumps(out))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pretrain")
    p.add_argument("--reward")
    p.add_argument("--reward-checkpoint", choices=("latest", "best"), default="latest",
                   dest="reward_checkpoint", help="best: the one its validation split chose")
    p.add_argument("--ppo", nargs="*", default=[])
    p.add_argument("--dpo", nargs="*", default=[])
    p.add_argument("--best-of", nargs="*", type=int, default=[], dest="best_of")
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--prompt-len", type=int, default=16, dest="prompt_len")
    p.add_argument("--max-new-tokens", type=int, default=48, dest="max_new")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("--plot")
    p.add_argument("--merge", nargs="*", default=[],
                   help="only plot (and write to --out) the results of these earlier outputs")
    args = p.parse_args()
    if args.merge:      # runs evaluated separately (same prompts and seed): one table, one plot
        parts = [json.load(open(f)) for f in args.merge]
        results = [r for i, part in enumerate(parts) for r in part["results"]
                   if i == 0 or r["method"] != "reference"]
        examples = {k: v for part in parts for k, v in part["examples"].items()}
        with open(args.out, "w") as f:
            json.dump({"results": results, "examples": examples, "prompts": parts[0]["prompts"],
                       "seed": parts[0]["seed"]}, f, indent=1)
        if args.plot:
            plot(results, args.plot)
        return

    objective, ctx, config = inference.load_trained_run(args.pretrain, "latest")
    tok, cfg, reference = objective.tokenizer, objective.model_config, ctx.params
    data = train.build_dataset(config, objective, args.pretrain)
    prompts = prompt_windows(data.val.tokens, args.samples, args.prompt_len, args.seed)
    _, reward_ctx, reward_cfg = inference.load_trained_run(args.reward,
                                                                  args.reward_checkpoint)
    reward = reward_ctx.params
    POOL["pool"] = reward_cfg.get("reward", {}).get("pool", "last")
    P = args.prompt_len

    def evaluate_policy(name, params, **extra):
        rows = np.concatenate([prompts, sample_responses(cfg, params, prompts,
                                                         max_new_tokens=args.max_new,
                                                         seed=args.seed)], 1)
        texts = [tok.decode(r[P:].tolist()) for r in rows]
        scores = true_score(texts)
        kl = sequence_kl(cfg, params, reference, rows, P).mean()
        return rows, texts, scores, kl

    results = []
    rows, texts, ref_scores, _ = evaluate_policy("reference", reference)
    results.append(summarise("reference", texts, ref_scores, ref_scores, 0.0,
                             reward_scores(cfg, reward, rows)))
    examples = {"reference": texts[:5]}
    for kind, runs in (("ppo", args.ppo), ("dpo", args.dpo)):
        for workdir in runs:
            run_obj, run_ctx, run_cfg = inference.load_trained_run(workdir, "latest")
            params = run_ctx.params["policy"] if kind == "ppo" else run_ctx.params
            beta = run_cfg.ppo.kl_coef if kind == "ppo" else run_cfg.dpo.beta
            rows, texts, scores, kl = evaluate_policy(kind, params)
            extra = {"kl_target": float(run_cfg.ppo.get("kl_target", 0.0))} if kind == "ppo" else {}
            results.append(summarise(kind, texts, scores, ref_scores, kl,
                                     reward_scores(cfg, reward, rows), beta=float(beta),
                                     workdir=workdir, **extra))
            examples[f"{kind} beta={beta}"] = texts[:5]
    for n in args.best_of:
        many = np.repeat(prompts, n, axis=0)
        rows = np.concatenate([many, sample_responses(cfg, reference, many,
                                                      max_new_tokens=args.max_new,
                                                      seed=args.seed + 1000 * n)], 1)
        rm = reward_scores(cfg, reward, rows).reshape(len(prompts), n)
        best = rows.reshape(len(prompts), n, -1)[np.arange(len(prompts)), rm.argmax(1)]
        texts = [tok.decode(r[P:].tolist()) for r in best]
        results.append(summarise("best_of_n", texts, true_score(texts), ref_scores,
                                 math.log(n) - (n - 1) / n, rm.max(1), N=n))
        examples[f"best of {n}"] = texts[:5]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"results": results, "examples": examples, "prompts": args.samples,
                   "seed": args.seed}, f, indent=1)
    if args.plot:
        plot(results, args.plot)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 4.5))
    methods = sorted({r["method"] for r in results} - {"reference"})
    for method in methods:
        marker = {"ppo": "o", "dpo": "s", "best": "^"}[method.split("_")[0].split("-")[0].split(" ")[0]]
        rs = sorted((r for r in results if r["method"] == method), key=lambda r: r["kl"])
        if rs:
            ax.errorbar([r["kl"] for r in rs], [r["true_score"] for r in rs],
                        yerr=[[r["gain"] - r["gain_95"][0] for r in rs],
                              [r["gain_95"][1] - r["gain"] for r in rs]],
                        marker=marker, label=method.replace("_", " "), capsize=3)
            for r in rs:
                label = (f"N={r['N']}" if "N" in r else f"KL→{r['kl_target']:g}"
                         if r.get("kl_target") else f"β={r['beta']:g}")
                ax.annotate(label, (r["kl"], r["true_score"]), fontsize=7,
                            textcoords="offset points", xytext=(4, 4))
    ref = next(r for r in results if r["method"] == "reference")
    ax.axhline(ref["true_score"], color="gray", ls="--", label="reference")
    ax.set_xlabel("KL(π ‖ π_ref), nats per response")
    ax.set_ylabel("true score (VADER compound, mean)")
    ax.set_title("Tiny Shakespeare char GPT: true score vs KL")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))   # outside the points
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
