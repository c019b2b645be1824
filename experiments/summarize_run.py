"""One run's numbers from its workdir's metrics.jsonl: best validation loss, the last eval's
metrics, the curve of the first FID, throughput and wall time.

  python experiments/summarize_run.py workdirs/shakespeare_char [--json summary.json]

Wall time is `time/elapsed_s` of the last row (the loop of the last process that ran, so a resumed
run reports its last leg); compilation before the first step is not in it.
"""
from __future__ import annotations

import argparse
import json
import statistics

from pretrainx.run import rundir


def summarize(workdir: str) -> dict:
    if not rundir.has_metrics(workdir):
        raise SystemExit(f"summarize_run: no {rundir.METRICS} in {workdir}")
    rows = rundir.read_rows(workdir)
    out: dict = {"workdir": workdir, "last_step": max((r["step"] for r in rows), default=0)}
    vals = [(r["val/loss"], r["step"]) for r in rows if "val/loss" in r]
    if vals:
        out["best_val_loss"], out["best_val_step"] = min(vals)
        out["val_loss_curve"] = [[s, round(v, 4)] for v, s in vals]
    train = [r for r in rows if "train/loss" in r]
    if train:
        out["last_train_loss"] = train[-1]["train/loss"]
        rates = [r["train/steps_per_sec"] for r in train[1:] if "train/steps_per_sec" in r]
        if rates:
            out["median_steps_per_sec"] = statistics.median(rates)
        tps = [r["train/tokens_per_sec"] for r in train[1:] if "train/tokens_per_sec" in r]
        if tps:
            out["median_tokens_per_sec"] = statistics.median(tps)
    evals = [r for r in rows if any(k.startswith(("eval/", "val/")) for k in r)]
    if evals:
        out["last_eval"] = evals[-1]
    fids = [[r["step"], round(r["eval/fid"], 3)] for r in rows if "eval/fid" in r]
    if fids:
        out["fid_curve"] = fids
    elapsed = [r["time/elapsed_s"] for r in rows if "time/elapsed_s" in r]
    if elapsed:
        out["wall_s"] = round(elapsed[-1], 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdir")
    p.add_argument("--json", help="also write the summary to this file")
    args = p.parse_args()
    summary = summarize(args.workdir)
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
