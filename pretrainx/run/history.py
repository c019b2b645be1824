"""Reading a run's ``metrics.jsonl`` back: curves by metric name, for plots, sweeps and the
reproduction registry.

A resumed run logs the steps between its last checkpoint and the crash twice (once before, once
after); the later row is the one that continued into the final state, so it wins.
"""
from __future__ import annotations

import json
import math
import os

FILENAME = "metrics.jsonl"


def read_rows(workdir: str) -> list[dict]:
    path = os.path.join(workdir, FILENAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {FILENAME} in {workdir!r}: is it a pretrainx run?")
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:   # a line cut short by a kill: skip it
                    continue
    return rows


def curve(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of ``key``, sorted by step, one value per step (the last logged)."""
    by_step = {int(r["step"]): float(r[key]) for r in rows if key in r and "step" in r}
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def metric_keys(rows: list[dict]) -> set[str]:
    return {k for r in rows for k in r if k != "step"}


def summarize(workdir: str, key: str, mode: str = "min") -> dict | None:
    """Best and final value of ``key`` in a run: {"best", "best_step", "final", "final_step",
    "evals"}; None when the run never logged it. Non-finite values never count as best."""
    steps, vals = curve(read_rows(workdir), key)
    if not steps:
        return None
    finite = [(v, s) for s, v in zip(steps, vals) if math.isfinite(v)]
    pick = min if mode == "min" else max
    best, best_step = pick(finite, key=lambda vs: vs[0]) if finite else (math.nan, None)
    return {"best": best, "best_step": best_step, "final": vals[-1], "final_step": steps[-1],
            "evals": len(steps)}
