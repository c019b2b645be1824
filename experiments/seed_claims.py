"""Tables of issue 14's two claims of the seeds from the trials of the sweeps in
``experiments/seed_studies.py`` (each trial's config.json says its arm and seed; its
metrics.jsonl holds the curve). Run folders named ``<arm>_seed<n>`` (the bash loop's layout
before the sweeps) are read too.

  PYTHONPATH=. python experiments/seed_claims.py 1 workdirs/seed_claims/c1
  PYTHONPATH=. python experiments/seed_claims.py 2 workdirs/seed_claims/c2
  PYTHONPATH=. python experiments/seed_claims.py 2mlm workdirs/seed_claims/c2mlm

Claim 1: the threshold is fixed by a rule stated before the schedule arm is read: the val MLM
loss of ``constant_seed0`` at 2/3 of its steps. Each run's first eval step at or below it, its
final val loss and masked-token accuracy. Claim 2: each run's final (and lowest) ``val/clm_loss``.
"""
from __future__ import annotations

import glob
import os
import re
import statistics
import sys

from pretrainx.run import rundir


def val_curve(workdir: str) -> dict[int, dict]:
    out = {}
    for d in rundir.read_rows(workdir):
        if any(k.startswith("val/") for k in d):
            out.setdefault(d["step"], {}).update(d)
    return dict(sorted(out.items()))


def arm_of(config: dict) -> str:
    """The arm's name in the tables: the masking schedule (claim 1) or the MLM weight (claim 2)."""
    if "mixture" in config:
        return f"mlm_weight{config['mixture']['mlm_weight']:g}"
    mlm = config["mlm"]
    return ("constant" if mlm["rate_schedule"] == "constant"
            else f"{mlm['rate_schedule']}{round(100 * mlm['rate_start'])}")


def _labelled_runs(root: str):
    """(arm, seed, workdir) of every run under ``root``: sweep trials, else ARM_seedN folders."""
    for wd in sorted(glob.glob(os.path.join(root, "trials", "*"))):
        config = rundir.read_config(wd)
        if config is not None:
            yield arm_of(config), int(config["seed"]), wd
    for wd in sorted(glob.glob(os.path.join(root, "*_seed*"))):
        m = re.fullmatch(r"(.+)_seed(\d+)", os.path.basename(wd))
        if m:
            yield m.group(1), int(m.group(2)), wd


def runs(root: str) -> dict[str, dict[int, dict]]:
    """{arm: {seed: val curve}}."""
    out: dict = {}
    for arm, seed, wd in _labelled_runs(root):
        if rundir.has_metrics(wd):
            curve = val_curve(wd)
            if curve:
                out.setdefault(arm, {})[seed] = curve
    return out


def first_step_below(curve: dict[int, dict], key: str, threshold: float):
    return next((s for s, d in curve.items() if d[key] <= threshold), None)


def mean_sd(xs) -> str:
    got = [x for x in xs if x is not None]
    if not got:
        return "—"
    sd = statistics.stdev(got) if len(got) > 1 else 0.0
    note = "" if len(got) == len(xs) else f" (of the {len(got)} that reached it)"
    return f"{statistics.mean(got):.4g} ± {sd:.2g}{note}"


def fmt(x) -> str:
    return "not reached" if x is None else (f"{x:.4f}" if isinstance(x, float) else str(x))


def table(rows: dict[str, dict[int, dict]], columns) -> str:
    seeds = sorted({s for per in rows.values() for s in per})
    lines = ["| arm | metric | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd |",
             "|---" * (len(seeds) + 3) + "|"]
    for arm, per in rows.items():
        for name, get in columns:
            vals = [get(per[s]) if s in per else None for s in seeds]
            lines.append(f"| {arm} | {name} | " + " | ".join(fmt(v) for v in vals)
                         + f" | {mean_sd(vals)} |")
    return "\n".join(lines)


def claim1(root: str) -> str:
    arms = runs(root)
    ref = arms["constant"][0]
    last = max(ref)
    at = min(ref, key=lambda s: abs(s - 2 * last / 3))
    threshold = ref[at]["val/loss"]
    cols = [(f"first step val loss <= {threshold:.4f}",
             lambda c: first_step_below(c, "val/loss", threshold)),
            ("final val MLM loss", lambda c: c[max(c)]["val/loss"]),
            ("final val masked acc.", lambda c: c[max(c)]["val/accuracy"])]
    return (f"threshold {threshold:.4f} = constant_seed0's val/loss at step {at} of {last} "
            f"(2/3 of training)\n\n" + table(arms, cols))


LABELS = {"mlm_weight0": "pure CLM (mlm_weight 0)", "mlm_weight0.5": "CLM+MLM (mlm_weight 0.5)",
          "mlm_weight1": "pure MLM (mlm_weight 1)"}


def claim2(root: str, masked: bool = False) -> str:
    found = runs(root)
    arms = {LABELS.get(a, a): found[a] for a in sorted(found, key=lambda a: (a not in LABELS,
                                                                             list(LABELS).index(a) if a in LABELS else 0))}
    if masked:
        return table(arms, [("final val MLM loss", lambda c: c[max(c)]["val/mlm_loss"]),
                            ("final val masked acc.", lambda c: c[max(c)]["val/accuracy"])])
    cols = [("final val CLM loss", lambda c: c[max(c)]["val/clm_loss"]),
            ("lowest val CLM loss", lambda c: min(d["val/clm_loss"] for d in c.values())),
            ("final val next-token acc.", lambda c: c[max(c)]["val/accuracy"])]
    return table(arms, cols)


if __name__ == "__main__":
    claim, root = sys.argv[1], sys.argv[2]
    print(claim1(root) if claim == "1" else claim2(root, masked=claim == "2mlm"))
