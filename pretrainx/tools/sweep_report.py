"""What a finished (or interrupted) sweep leaves for a researcher, from the study and the trials'
``metrics.jsonl``: ``results.csv`` and ``results.md`` (one row per trial), ``best_config.py``
(the best trial, ready to train) and PNGs in ``plots/``: every trial's eval curve on one axes,
the metric against each swept value, and Optuna's parameter importances when the study has
enough complete trials. Every file is written whole and renamed into place, so workers that
finish at the same time never leave a torn file.
"""
from __future__ import annotations

import csv
import io
import math
import os
import warnings

import optuna
from matplotlib.figure import Figure
from optuna.trial import TrialState

from pretrainx.tools import plot

from pretrainx.run import rundir

from pretrainx.tools import sweep_def

from pretrainx.tools import sweep_worker

MIN_TRIALS_FOR_IMPORTANCE = 4   # complete trials, over >= 2 swept keys


def trial_line(trials, t) -> str:
    """One finished trial, numbered as in results.md (Optuna's own number in brackets)."""
    value = "" if t.value is None else f" value={t.value:.4f}"
    params = ", ".join(f"{k}={v!r}" for k, v in sorted(t.params.items()))
    wall = ""
    if t.datetime_start is not None and t.datetime_complete is not None:
        wall = f" wall={(t.datetime_complete - t.datetime_start).total_seconds():.1f}s"
    return (f"trial {sweep_worker.point_index(trials, t):03d} (optuna {t.number}) "
            f"{t.state.name}{value}{wall} {params}").rstrip()


def running_line(trials, workdir: str, total_steps: int) -> str:
    """The trials training now and the last step each logged: "running: trial 003 at step
    40/100, trial 004 at step 10/100" ("" when none runs)."""
    shown = []
    for t in trials:
        if t.state != TrialState.RUNNING or "workdir" not in t.user_attrs:
            continue
        run_dir = os.path.join(workdir, t.user_attrs["workdir"])
        steps = [int(r["step"]) for r in rundir.read_rows(run_dir)
                 if "step" in r] if rundir.has_metrics(run_dir) else []
        shown.append(f"trial {sweep_worker.point_index(trials, t):03d} at step "
                     f"{max(steps, default=0)}/{total_steps}")
    return "running: " + ", ".join(shown) if shown else ""


def rows(study: optuna.Study, sweep: sweep_def.Sweep, workdir: str) -> list[dict]:
    """One row per trial (a first attempt with its retries), in trial order."""
    trials = study.get_trials(deepcopy=False)
    attempts: dict[int, list] = {}
    for t in trials:
        if not t.user_attrs.get("surplus"):
            attempts.setdefault(sweep_worker.point_index(trials, t), []).append(t)
    out = []
    for number in sorted(attempts):
        chain = sorted(attempts[number], key=lambda t: t.number)
        last = chain[-1]
        run_dir = os.path.join(workdir, "trials", f"{number:03d}")
        summary = (rundir.summarize(run_dir, sweep.metric, sweep.mode)
                   if rundir.has_metrics(run_dir) else None)
        value = last.value if last.state == TrialState.COMPLETE else None
        if value is None and summary:   # pruned, failed or running: its best so far
            value = summary["best"] if sweep.value == "best" else summary["final"]
        wall = sum((t.datetime_complete - t.datetime_start).total_seconds()
                   for t in chain if t.datetime_complete and t.datetime_start)
        note = last.user_attrs.get("error", "")
        if last.state == TrialState.PRUNED and summary:
            note = f"pruned at step {summary['final_step']}"
        row = {"trial": number, "status": last.state.name,
               **{k: last.params.get(k, "") for k in sweep.keys},
               sweep.metric: value, "best_step": summary["best_step"] if summary else "",
               "last_step": summary["final_step"] if summary else "",
               "wall_s": round(wall, 1), "attempts": len(chain),
               "optuna_trials": " ".join(str(t.number) for t in chain), "note": note}
        out.append(row)
    return out


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _fmt(v, column: str = "") -> str:
    if column == "trial":
        return f"{v:03d}"
    if column == "wall_s":
        return f"{v:.1f}"
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.4f}"
    return "" if v is None else str(v)


def write_csv(table: list[dict], path: str) -> None:
    buf = io.StringIO()
    if table:
        writer = csv.DictWriter(buf, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    _atomic_write(path, buf.getvalue())


def best_trial(study: optuna.Study):
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    return study.best_trial if complete else None


def write_best_config(study, sweep, base, workdir: str, spec: str, overrides: dict) -> str | None:
    """``best_config.py``: the sweep's base config file plus the command's and the best trial's
    overrides, as a config file ``pretrainx train --config`` takes."""
    best = best_trial(study)
    if best is None:
        return None
    path, _, arg = spec.partition(":")
    base_arg = arg if sweep.config_arg is None else sweep.config_arg
    base_spec = os.path.abspath(path) + (f":{base_arg}" if base_arg else "")
    fields = {k: sweep_worker._get(base, k) for k in best.params}
    trial_overrides = {k: sweep_def.decode(v, fields[k]) for k, v in best.params.items()}
    lines = [f"    {k!r}: {v!r},   # from the sweep command" for k, v in sorted(overrides.items())]
    lines += [f"    {k!r}: {v!r},   # the best trial's value" for k, v in
              sorted(trial_overrides.items())]
    out = os.path.join(workdir, "best_config.py")
    number = sweep_worker.point_index(study.get_trials(deepcopy=False), best)
    _atomic_write(out, f'''"""Best trial of the sweep in {os.path.abspath(workdir)}: trial {number:03d},
{sweep.metric} = {best.value:.6g} ({sweep.value} of its evals, {sweep.mode} wins).

  pretrainx train --config {out} --workdir WORKDIR
"""
from pretrainx.config import load as config_lib

BASE = {base_spec!r}
OVERRIDES = {{
{chr(10).join(lines)}
}}


def get_config(arg: str = ""):
    return config_lib.override(config_lib.load(BASE), OVERRIDES)
''')
    return out


def plot_curves(table, sweep, workdir: str, out: str, best_number) -> str | None:
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.subplots()
    styles = {"COMPLETE": "-", "PRUNED": "--", "FAIL": ":", "RUNNING": "-."}
    drawn = 0
    for i, row in enumerate(table):
        run_dir = os.path.join(workdir, "trials", f"{row['trial']:03d}")
        if not rundir.has_metrics(run_dir):
            continue
        steps, vals = rundir.curve(rundir.read_rows(run_dir), sweep.metric)
        if not steps:
            continue
        label = f"{row['trial']:03d} {row['status'].lower()}: " + ", ".join(
            f"{k.split('.')[-1]}={_fmt(row[k])}" for k in sweep.keys if row[k] != "")
        best = row["trial"] == best_number
        color = f"C{i % 10}"
        plot.draw_curve(ax, steps, vals, label=label + (" (best)" if best else ""), color=color,
                        linestyle=styles.get(row["status"], "-"), linewidth=2.8 if best else 1.3,
                        marker=".")
        if row["status"] == "PRUNED":   # where the pruner stopped it
            ax.plot(steps[-1:], vals[-1:], "x", color=color, markersize=10, markeredgewidth=2)
        drawn += 1
    if not drawn:
        return None
    ax.set_xlabel("step")
    ax.set_ylabel(sweep.metric)
    ax.set_title(f"{sweep.metric} of every trial (dashed and x: pruned there; dotted: failed)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small", loc="best")
    fig.savefig(out, dpi=110)
    return out


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


MARKERS = {"COMPLETE": "o", "PRUNED": "x", "FAIL": "v", "RUNNING": "s"}


def plot_metric_vs_params(table, sweep, out: str) -> str | None:
    """One panel per swept key: the trials' metric against its value. In a grid, trials that
    share every other key's value are joined by a line (one colour per such group), so each
    line reads as "what this key does, all else fixed"."""
    keys = sweep.keys
    done = [r for r in table if isinstance(r[sweep.metric], float) and math.isfinite(r[sweep.metric])]
    if not done or not keys:
        return None
    fig = Figure(figsize=(max(7.0, 4.6 * len(keys)), 4.4), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        xs = [r[key] for r in done]
        if not _numeric(xs):   # categorical values: one x position per distinct value
            order = list(dict.fromkeys(map(str, xs)))
            ax.set_xticks(range(len(order)), order, rotation=30)
            xs = [order.index(str(x)) for x in xs]
        elif getattr(sweep.space.get(key), "log", False) or (
                min(xs) > 0 and max(xs) / min(xs) >= 3):
            ax.set_xscale("log")
        others = [k for k in keys if k != key]
        groups: dict[str, list] = {}
        for x, r in zip(xs, done):
            name = (", ".join(f"{k.split('.')[-1]}={_fmt(r[k])}" for k in others)
                    if sweep.sampler == "grid" and others else "")
            groups.setdefault(name, []).append((x, r[sweep.metric], r["status"]))
        for i, (name, pts) in enumerate(groups.items()):
            pts.sort(key=lambda p: p[0])
            color = f"C{i % 10}" if name else "C0"
            if name and len(pts) > 1:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, label=name)
            for x, y, status in pts:
                ax.scatter([x], [y], color=color, marker=MARKERS.get(status, "o"), s=40, zorder=3)
        for status in sorted({r["status"] for r in done}):   # marker key (pruned: last eval)
            ax.scatter([], [], color="gray", marker=MARKERS.get(status, "o"), label=status.lower())
        ax.set_xlabel(key)
        ax.set_ylabel(f"{sweep.metric} ({sweep.value})")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.suptitle(f"{sweep.metric} against each swept value, {len(done)} trials")
    fig.savefig(out, dpi=110)
    return out


def plot_importance(study, sweep, out: str) -> tuple[str | None, dict]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varied = [k for k in sweep.keys if len({str(t.params.get(k)) for t in complete}) > 1]
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE or len(varied) < 2:
        return None, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # fANOVA (seeded): on a handful of trials Optuna's default PED-ANOVA compares only
        # the top 10 % and returns equal shares; fANOVA's variance split stays informative.
        importances = optuna.importance.get_param_importances(
            study, params=varied, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
        importances = {k: float(v) for k, v in importances.items()}
    fig = Figure(figsize=(7, 0.6 * len(importances) + 1.6), layout="constrained")
    ax = fig.subplots()
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names], color="C0")
    ax.set_xlabel("importance: share of the metric's variance (Optuna's fANOVA)")
    ax.set_title(f"parameter importances for {sweep.metric}, {len(complete)} complete trials")
    fig.savefig(out, dpi=110)
    return out, importances


def write(study, sweep, base, workdir: str, *, spec: str, overrides: dict) -> list[str]:
    """Every result file; returns their paths."""
    table = rows(study, sweep, workdir)
    plots_dir = os.path.join(workdir, "plots")
    os.makedirs(plots_dir, exist_ok=True)
    best = best_trial(study)
    trials = study.get_trials(deepcopy=False)
    best_number = sweep_worker.point_index(trials, best) if best else None
    paths = [os.path.join(workdir, "results.csv")]
    write_csv(table, paths[0])
    best_path = write_best_config(study, sweep, base, workdir, spec, overrides)
    curves = plot_curves(table, sweep, workdir, os.path.join(plots_dir, "curves.png"), best_number)
    scatter = plot_metric_vs_params(table, sweep, os.path.join(plots_dir, "metric_vs_params.png"))
    importance, importances = plot_importance(study, sweep, os.path.join(plots_dir, "importance.png"))
    md = os.path.join(workdir, "results.md")
    _atomic_write(md, _markdown(table, study, sweep, spec, best_number, best, best_path, importances,
                                [p for p in (curves, scatter, importance) if p], workdir))
    return paths + [md] + [p for p in (best_path, curves, scatter, importance) if p]


def _markdown(table, study, sweep, spec, best_number, best, best_path, importances, pngs,
              workdir) -> str:
    counts = {}
    for r in table:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    head = [f"# Sweep `{spec}`", "",
            f"{sweep.sampler} sampler, pruner {sweep.pruner}, metric `{sweep.metric}` "
            f"({sweep.value} of each trial's evals, {sweep.mode} wins); "
            + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) + ".", ""]
    cols = list(table[0]) if table else []
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in table:
        cells = [_fmt(r[c], c) for c in cols]
        if r["trial"] == best_number:
            cells[0] = f"**{cells[0]}** (best)"
        lines.append("| " + " | ".join(cells) + " |")
    tail = [""]
    if best_path:
        tail += [f"Best: trial {best_number:03d}, {sweep.metric} = {best.value:.6g}; "
                 f"`pretrainx train --config {best_path} --workdir WORKDIR`", ""]
    if importances:
        tail += ["Parameter importances (Optuna): " + ", ".join(
            f"`{k}` {v:.2f}" for k, v in importances.items()), ""]
    else:
        tail += [f"Parameter importances: not computed (they need >= {MIN_TRIALS_FOR_IMPORTANCE} "
                 f"complete trials over >= 2 swept keys).", ""]
    tail += [f"![{os.path.basename(p)}]({os.path.relpath(p, workdir)})" for p in pngs]
    return "\n".join(head + lines + tail) + "\n"
