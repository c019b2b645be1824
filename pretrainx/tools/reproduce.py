"""``pretrainx reproduce``: published numbers, and our own pinned ones, checked by running them.

  pretrainx reproduce NAME [--workdir DIR] [--log FILE] [--force] [--config.KEY=VALUE ...]
  pretrainx reproduce --list

The entries live in ``pretrainx/tools/registry.py``: each names what to run (a config and its
overrides, an n-gram baseline, or a parameter count), the metric, the expected value with its
tolerance, the hardware it needs, its last recorded result (value, date, device) or "not yet
run", and either its ``source`` (a paper or a peer's run, where in it) or its ``pin`` (our own
number, kept to catch regressions). A run prints PASS or FAIL with the numbers and appends a JSON
line to the results log; a pin's line says it is one, never "reproduced".
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import time

from pretrainx.errors import UnknownName, UserError

REPO = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
REGISTRY = os.path.join(os.path.dirname(__file__), "registry.py")
LOG = os.path.join(REPO, "workdirs", "reproduce", "log.jsonl")
KINDS = ("train", "ngram", "params")
HARDWARE = ("cpu", "1 GPU", "pod")


class NotRunnable(Exception):
    """The entry cannot run here (it needs a GPU)."""


def number(v: float) -> str:
    """Counts as integers with thousands separators, losses to 6 significant digits."""
    return f"{int(v):,}" if float(v).is_integer() and abs(v) >= 1e4 else f"{v:.6g}"


@dataclasses.dataclass(frozen=True)
class Target:
    """``value ± tolerance`` (kind "within") or a bound (kind "at_most" / "at_least")."""
    value: float
    tolerance: float = 0.0
    kind: str = "within"
    relative: bool = False          # tolerance as a fraction of value

    def passes(self, measured: float) -> bool:
        tol = self.tolerance * abs(self.value) if self.relative else self.tolerance
        if self.kind == "at_most":
            return measured <= self.value + tol
        if self.kind == "at_least":
            return measured >= self.value - tol
        return abs(measured - self.value) <= tol

    def describe(self) -> str:
        tol = f"{self.tolerance:.0%}" if self.relative else f"{self.tolerance:g}"
        if self.kind == "within":
            return number(self.value) + (f" ± {tol}" if self.tolerance else " exactly")
        sign = "<=" if self.kind == "at_most" else ">="
        return f"{sign} {number(self.value)}" + (f" (+ {tol})" if self.tolerance else "")


@dataclasses.dataclass(frozen=True)
class Recorded:
    value: float
    date: str
    device: str
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    what: str                       # one line: what is being reproduced
    kind: str                       # train | ngram | params
    metric: str                     # e.g. "val/loss", "params"
    hardware: str                   # cpu | 1 GPU | pod
    source: str = ""                # external: paper or peer run, and where in it (table, figure)
    pin: str = ""                   # or: our own number, kept to catch regressions (and where from)
    target: Target | None = None    # None: no number to check against yet
    config: str = ""                # "configs/x.py[:arg]" (train, params)
    overrides: dict = dataclasses.field(default_factory=dict)
    take: str = "best"              # train: best | final eval of the run
    mode: str = "min"               # which is best: min (loss, val/bpb) | max (a task's acc)
    options: dict = dataclasses.field(default_factory=dict)   # ngram: text, n, k, val_fraction
    recorded: Recorded | str = "not yet run"   # the last recorded result, or why there is none
    cpu_minutes: float = 0.0        # rough wall time on 2 CPU cores (tests run those under 1)
    extra_overrides: tuple = ()     # set by ``with_overrides`` (the command line), never here

    def command(self) -> str:
        return f"pretrainx reproduce {self.name}"


def load_registry(path: str = REGISTRY) -> list[Entry]:
    from pretrainx.config import load as config_lib
    module = config_lib.load_file(path, "registry")
    if not hasattr(module, "ENTRIES"):
        raise UserError(f"registry {path} defines no ENTRIES (a list of Entry)")
    entries = list(module.ENTRIES)
    names = [e.name for e in entries]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise UserError(f"registry {path} names {sorted(dup)} twice")
    for e in entries:
        if e.mode not in ("min", "max"):
            raise UserError(f"registry entry {e.name!r}: mode {e.mode!r} (min or max)")
        if e.kind not in KINDS or e.hardware not in HARDWARE:
            raise UserError(f"registry entry {e.name!r}: kind {e.kind!r} / hardware {e.hardware!r} "
                            f"(kinds: {KINDS}; hardware: {HARDWARE})")
        if bool(e.source) == bool(e.pin):
            raise UserError(f"registry entry {e.name!r} must name exactly one of source= (a "
                            f"published number) or pin= (our own number)")
    return entries


def find(entries: list[Entry], name: str) -> Entry:
    for e in entries:
        if e.name == name:
            return e
    raise UnknownName(f"no registry entry {name!r} (known: {', '.join(e.name for e in entries)})")


def load_config(entry: Entry):
    from pretrainx.config import load as config_lib
    path, sep, arg = entry.config.partition(":")
    return config_lib.override(config_lib.load(os.path.join(REPO, path) + sep + arg),
                               entry.overrides)


def with_overrides(entry: Entry, pairs: list[str]) -> Entry:
    """``entry`` with ``--config.KEY=VALUE`` texts added to its overrides (typed by its config's
    fields); the results log records them, so such a run is never mistaken for the entry's own."""
    if not pairs:
        return entry
    if not entry.config:
        raise UserError(f"{entry.name} runs no config: --config overrides do not apply")
    from pretrainx.config import load as config_lib
    added = config_lib.parse_overrides(pairs, load_config(entry))
    return dataclasses.replace(entry, overrides={**entry.overrides, **added},
                               extra_overrides=tuple(pairs))


def this_device() -> tuple[str, str]:
    """(hardware class, device name) of this machine, as the registry writes them."""
    import jax
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        return "cpu", f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return ("1 GPU" if dev.platform == "gpu" else "pod"), dev.device_kind


def measure(entry: Entry, workdir: str) -> float:
    """Run the entry and return its number."""
    if entry.kind == "ngram":
        from pretrainx.tools import ngram
        opts = dict(entry.options)
        with open(os.path.join(REPO, opts.pop("text")), encoding="utf-8") as f:
            text = f.read()
        return ngram.fit_and_evaluate(text, **opts)["val"]["loss"]
    config = load_config(entry)
    if entry.kind == "params":
        import jax
        from pretrainx import objectives
        from pretrainx.core import state
        objective = objectives.get(config.objective)(config)
        shapes = jax.eval_shape(objective.init, jax.random.key(0, impl="unsafe_rbg"))
        return float(state.count_params(shapes))
    from pretrainx.run import rundir
    from pretrainx.core import train
    train.run(config, workdir)
    summary = rundir.summarize(workdir, entry.metric, entry.mode)
    if summary is None:
        raise UserError(f"the run in {workdir} never logged {entry.metric!r}")
    return summary[entry.take]


def reproduce(entry: Entry, workdir: str, log_path: str = LOG, force: bool = False) -> dict:
    """Measure ``entry``, compare it with the target, append the result to ``log_path``."""
    hardware, device = this_device()
    if entry.hardware != "cpu" and hardware == "cpu" and not force and entry.kind == "train":
        raise NotRunnable(f"{entry.name} needs {entry.hardware} (this machine: {device}); "
                          f"--force runs it anyway")
    started = time.perf_counter()
    value = measure(entry, workdir)
    result = {"name": entry.name, "metric": entry.metric, "value": value,
              "target": entry.target.describe() if entry.target else None,
              "passed": entry.target.passes(value) if entry.target else None,
              "date": datetime.date.today().isoformat(), "device": device,
              "seconds": round(time.perf_counter() - started, 1),
              "workdir": workdir if entry.kind == "train" else None}
    if entry.extra_overrides:
        result["overrides"] = list(entry.extra_overrides)
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "a") as f:
        f.write(json.dumps(result) + "\n")
    return result


def last_results(log_path: str) -> dict[str, dict]:
    """The latest logged result of each entry."""
    out = {}
    if os.path.exists(log_path):
        with open(log_path) as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    out[row["name"]] = row
    return out


def _recorded_text(entry: Entry) -> str:
    r = entry.recorded
    if isinstance(r, Recorded):
        return f"{number(r.value)}, {r.date}, {r.device}" + (f" ({r.note})" if r.note else "")
    return r


def status_table(entries: list[Entry], log_path: str = LOG) -> str:
    """Markdown table of every entry: whether its number is an external source or our own pin,
    target, hardware, recorded result, last run in the log, and where the number comes from."""
    last = last_results(log_path)
    lines = ["| name | number | metric | target | hardware | recorded | last run here | from |",
             "|---|---|---|---|---|---|---|---|"]
    for e in entries:
        target = e.target.describe() if e.target else "none yet"
        here = "-"
        if e.name in last:
            r = last[e.name]
            verdict = "no target" if r["passed"] is None else "PASS" if r["passed"] else "FAIL"
            here = f"{verdict} {number(r['value'])} ({r['date']}, {r['device']})"
        kind = "source" if e.source else "pin (ours)"
        lines.append(f"| {e.name} | {kind} | {e.metric} | {target} | {e.hardware} | "
                     f"{_recorded_text(e)} | {here} | {e.source or e.pin} |")
    return "\n".join(lines)


def format_result(entry: Entry, result: dict) -> str:
    """One line: PASS / FAIL, the number against its target and, for a pin, that it is one."""
    verdict = ("NO TARGET YET" if result["passed"] is None else
               "PASS" if result["passed"] else "FAIL")
    target = f"target {result['target']}" if result["target"] else "no target recorded yet"
    kind = (f"reproduces {entry.source}" if entry.source and result["passed"]
            else "a regression pin of our own number, not a reproduction" if entry.pin
            else f"source: {entry.source}")
    return (f"{verdict} {entry.name}: {entry.metric} = {number(result['value'])} ({target}; "
            f"recorded: {_recorded_text(entry)}) in {result['seconds']} s on {result['device']}"
            f"; {kind}")
