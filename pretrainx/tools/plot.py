"""``pretrainx plot``: several runs' curves from their ``metrics.jsonl`` in one PNG, the picture
otherwise made by hand from TensorBoard.

  pretrainx plot WORKDIR [WORKDIR ...] [--metric val/loss] [--train-metric train/loss]
                 [--log-x] [--log-y] [--out FILE.png] [--labels A B ...]

Left panel: the train metric per logged step; right panel: the eval metric, each run's best
eval marked and written in the legend. One colour per run in both panels.
"""
from __future__ import annotations

import argparse
import os

from matplotlib.figure import Figure   # no pyplot: no GUI backend, no global figure state
from matplotlib.ticker import FuncFormatter

from pretrainx.errors import UserError
from pretrainx.run import rundir


def run_labels(workdirs: list[str]) -> list[str]:
    """Each run's folder name; the parent folder joins it where two runs share a name."""
    names = [os.path.basename(os.path.normpath(w)) for w in workdirs]
    if len(set(names)) == len(names):
        return names
    return [os.path.join(os.path.basename(os.path.dirname(os.path.normpath(w))), n)
            for w, n in zip(workdirs, names)]


def draw_curve(ax, steps, values, *, label: str, color, mark_best: str | None = None,
               linestyle: str = "-", linewidth: float = 1.5, marker: str | None = None) -> None:
    """One run's curve; ``mark_best`` ("min" / "max") circles the best point and puts it in the
    label, e.g. "run_a (best 1.4675 @ 1500)"."""
    if mark_best and values:
        i = (min if mark_best == "min" else max)(range(len(values)), key=values.__getitem__)
        label = f"{label} (best {values[i]:.4g} @ {steps[i]})"
        ax.plot([steps[i]], [values[i]], "o", color=color, markersize=5, markerfacecolor="none")
    ax.plot(steps, values, linestyle=linestyle, color=color, label=label, linewidth=linewidth,
            marker=marker, markersize=3)


def compare_figure(workdirs: list[str], *, metric: str = "val/loss",
                   train_metric: str = "train/loss", log_x: bool = False, log_y: bool = False,
                   labels: list[str] | None = None, mode: str = "min") -> Figure:
    """The comparison figure: train metric left, eval metric right, one colour per run."""
    if not workdirs:
        raise UserError("plot needs at least one WORKDIR")
    labels = labels or run_labels(workdirs)
    if len(labels) != len(workdirs):
        raise UserError(f"{len(labels)} labels for {len(workdirs)} runs")
    runs = [(label, rundir.read_rows(w)) for label, w in zip(labels, workdirs)]
    if not any(rundir.curve(rows, metric)[0] for _, rows in runs):
        known = sorted(set().union(*(rundir.metric_keys(r) for _, r in runs)))
        raise UserError(f"no run logged {metric!r} (logged: {', '.join(known)})")

    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax_train, ax_val = fig.subplots(1, 2)
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for (label, rows), color in zip(runs, colors):
        steps, vals = rundir.curve(rows, train_metric)
        if steps:
            draw_curve(ax_train, steps, vals, label=label, color=color, linewidth=1.0)
        steps, vals = rundir.curve(rows, metric)
        if steps:
            draw_curve(ax_val, steps, vals, label=label, color=color, mark_best=mode,
                       marker="." if len(steps) < 30 else None)
    for ax, name in ((ax_train, train_metric), (ax_val, metric)):
        ax.set_xlabel("step (log scale)" if log_x else "step")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        if log_x:   # steps as plain numbers (50, 100, 2000), not 5x10^1
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25"
                                                       else ""))
        if log_y:
            ax.set_yscale("log")
    ax_val.legend(fontsize="small")
    fig.suptitle(f"{len(runs)} run{'s' * (len(runs) > 1)}: {train_metric} and {metric}")
    return fig


def compare(workdirs: list[str], out: str, **options) -> str:
    """Write the comparison PNG (``compare_figure``'s options) to ``out``; returns its path."""
    fig = compare_figure(workdirs, **options)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def default_out(workdirs: list[str]) -> str:
    """Beside the runs, never into the current directory: ``WORKDIR/plots/curves.png`` for one
    run, ``curves.png`` in the deepest folder holding all of several (a sweep's ``trials/``)."""
    if len(workdirs) == 1:
        return os.path.join(workdirs[0], "plots", "curves.png")
    common = os.path.commonpath([os.path.abspath(w) for w in workdirs])
    if common in [os.path.abspath(w) for w in workdirs]:    # one run inside another's folder
        return os.path.join(common, "plots", "curves.png")
    if os.path.dirname(common) == common:
        raise UserError(f"the runs share no folder but {common!r}: say where the plot goes "
                        "with --out FILE.png")
    return os.path.join(common, "curves.png")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="pretrainx plot", description=__doc__.splitlines()[0])
    p.add_argument("workdirs", nargs="+", metavar="WORKDIR")
    p.add_argument("--metric", default="val/loss", help="eval metric for the right panel")
    p.add_argument("--train-metric", default="train/loss", dest="train_metric")
    p.add_argument("--mode", choices=("min", "max"), default="min", help="which eval is best")
    p.add_argument("--log-x", action="store_true", dest="log_x")
    p.add_argument("--log-y", action="store_true", dest="log_y")
    p.add_argument("--labels", nargs="+", help="legend names, one per WORKDIR")
    p.add_argument("--out", help="PNG path (default: WORKDIR/plots/curves.png for one run; "
                                 "for several, curves.png in the folder that holds them all)")
    args = p.parse_args(argv)
    path = compare(args.workdirs, args.out or default_out(args.workdirs), metric=args.metric,
                   train_metric=args.train_metric, log_x=args.log_x, log_y=args.log_y,
                   labels=args.labels, mode=args.mode)
    print(f"wrote {path}")
    return 0
