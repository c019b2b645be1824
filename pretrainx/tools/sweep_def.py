"""Sweep definitions: what ``get_sweep(arg)`` beside ``get_config(arg)`` in a config file returns.

Two kinds, both over the dotted keys of ``--config.X=Y``:
  * a **grid**: an explicit list of override points, built from ``values`` with ``product`` and
    ``zip`` (big_vision's style), one trial per point, in the order written;
  * a **search**: key -> ``loguniform`` / ``uniform`` / ``integer`` / ``choice``, drawn by Optuna's
    random or TPE sampler for a budget of trials.

    from pretrainx.tools import sweep_def as sd

    def get_sweep(arg):
        return sd.grid(sd.product(sd.values("optimizer.lr", [1e-3, 3e-3]),
                                  sd.values("model.num_layers", [2, 4])))
        # or: sd.search({"optimizer.lr": sd.loguniform(1e-4, 1e-2)}, sampler="tpe", trials=20,
        #               pruner="median")

``check(sweep, config)`` turns every mistake (unknown key, empty grid, a value of the wrong type,
an unknown pruner option) into a ValueError of one line that names it.
"""
from __future__ import annotations

import builtins
import dataclasses
import itertools
import json
import warnings

import ml_collections
import optuna

from pretrainx.config import load as config_lib
from pretrainx.errors import UserError

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = {"none": optuna.pruners.NopPruner, "median": optuna.pruners.MedianPruner,
           "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
           "hyperband": optuna.pruners.HyperbandPruner}
# Optuna stores categorical choices of these types; others (tuples) travel as their repr.
_SCALARS = (type(None), bool, int, float, str)


@dataclasses.dataclass(frozen=True)
class Sweep:
    points: tuple = ()              # grid: one dict of overrides per trial
    space: dict = dataclasses.field(default_factory=dict)   # search: key -> optuna distribution
    sampler: str = "grid"           # grid | random | tpe
    sampler_options: dict = dataclasses.field(default_factory=dict)   # e.g. n_startup_trials
    trials: int = 0                 # the budget; a grid's is its number of points
    metric: str = "val/loss"        # a key the runner logs at each eval
    mode: str = "min"               # min | max
    value: str = "best"             # best | final: which eval of a trial is its value
    pruner: str = "none"            # none | median | successive_halving | hyperband
    pruner_options: dict = dataclasses.field(default_factory=dict)
    enqueue: tuple = ()             # search: points tried first (e.g. the recipe's own values)
    seed: int = 0
    max_retries: int = 2            # an interrupted or crashed trial is retried this many times
    config_arg: str | None = None   # the get_config arg trials start from (None: the sweep's arg)

    @property
    def keys(self) -> list[str]:
        if self.points:
            return sorted({k for p in self.points for k in p})
        return sorted(self.space)


# --- building a grid ------------------------------------------------------------------------
def values(key: str, options) -> list[dict]:
    """One axis: ``values("optimizer.lr", [1e-3, 3e-3])`` -> [{"optimizer.lr": 1e-3}, ...]."""
    options = list(options)
    if not options:
        raise UserError(f"empty grid: values({key!r}, []) has no values")
    return [{key: v} for v in options]


def product(*axes: list[dict]) -> list[dict]:
    """Every combination of the axes' points (the first axis varies slowest)."""
    _check_disjoint(axes, "product")
    return [_merge(combo) for combo in itertools.product(*axes)]


def zip(*axes: list[dict]) -> list[dict]:   # noqa: A001 - big_vision's name for it
    """The axes' points side by side; the axes must have the same length."""
    lengths = [len(a) for a in axes]
    if len(set(lengths)) > 1:
        raise UserError(f"zip of axes with different lengths {lengths}")
    _check_disjoint(axes, "zip")
    return [_merge(combo) for combo in builtins.zip(*axes)]


def _merge(dicts) -> dict:
    out = {}
    for d in dicts:
        out.update(d)
    return out


def _check_disjoint(axes, how: str) -> None:
    seen: set[str] = set()
    for axis in axes:
        if not axis:
            raise UserError(f"empty grid: an axis of the {how} has no points")
        keys = set(axis[0])
        if keys & seen:
            raise UserError(f"{how} sets {sorted(keys & seen)} twice")
        seen |= keys


def grid(points: list[dict], **options) -> Sweep:
    return Sweep(points=tuple(dict(p) for p in points), sampler="grid", trials=len(points),
                 **options)


# --- a search space ---------------------------------------------------------------------------
def _range(name: str, make, low, high, **options):
    """An Optuna distribution; bounds it refuses (low > high, log of 0) -> one line naming it."""
    try:
        return make(low, high, **options)
    except ValueError as e:
        raise UserError(f"sd.{name}({low!r}, {high!r}): {e}") from None


def loguniform(low: float, high: float):
    return _range("loguniform", optuna.distributions.FloatDistribution, float(low), float(high),
                  log=True)


def uniform(low: float, high: float):
    return _range("uniform", optuna.distributions.FloatDistribution, float(low), float(high))


def integer(low: int, high: int, log: bool = False):
    return _range("integer", optuna.distributions.IntDistribution, int(low), int(high), log=log)


def choice(options):
    options = list(options)
    if not options:
        raise UserError("choice([]) has no options")
    return optuna.distributions.CategoricalDistribution([encode(o) for o in options])


def search(space: dict, *, sampler: str = "tpe", trials: int, **options) -> Sweep:
    return Sweep(space=dict(space), sampler=sampler, trials=trials,
                 enqueue=tuple(dict(p) for p in options.pop("enqueue", ())), **options)


# --- values as Optuna stores them -----------------------------------------------------------
def encode(value):
    """A config value as an Optuna parameter: scalars as they are, anything else as its repr."""
    return value if isinstance(value, _SCALARS) else repr(value)


def decode(value, field):
    """Back from ``encode``: a repr becomes the tuple (or list) again when the field is one."""
    if isinstance(value, str) and isinstance(field, (tuple, list)):
        import ast
        return ast.literal_eval(value)
    return value


# --- loading and checking -------------------------------------------------------------------
def load(spec: str) -> tuple[Sweep, ml_collections.ConfigDict]:
    """``"configs/x.py:arg"`` -> (the file's ``get_sweep(arg)``, the config its trials start from)."""
    path, _, arg = spec.partition(":")
    module = config_lib.load_file(path, "config")
    if not hasattr(module, "get_sweep"):
        raise UserError(f"{path} has no get_sweep(arg): nothing to sweep")
    try:
        sweep = module.get_sweep(arg)
    except TypeError as e:   # e.g. Sweep(...) given a field it does not have
        raise UserError(f"get_sweep({arg!r}) in {path}: {e}") from None
    if not isinstance(sweep, Sweep):
        raise UserError(f"get_sweep({arg!r}) in {path} returned {type(sweep).__name__}, not a Sweep")
    base_arg = arg if sweep.config_arg is None else sweep.config_arg
    return sweep, config_lib.load(f"{path}:{base_arg}" if base_arg else path)


def check(sweep: Sweep, config: ml_collections.ConfigDict) -> None:
    """Raise a one-line ValueError naming the first problem of ``sweep`` against ``config``."""
    if sweep.sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sweep.sampler!r} (known: {', '.join(SAMPLERS)})")
    if sweep.sampler == "grid":
        if not sweep.points:
            raise UserError("empty grid: the sweep has no points")
        if sweep.space:
            raise UserError("a grid sweep takes points, not a search space")
    elif not sweep.space:
        raise UserError(f"a {sweep.sampler} sweep needs a search space (key -> distribution)")
    if sweep.trials < 1:
        raise UserError(f"the sweep's trial budget is {sweep.trials}; it must be >= 1")
    if sweep.mode not in ("min", "max"):
        raise UserError(f"mode is {sweep.mode!r}; it must be 'min' or 'max'")
    if sweep.value not in ("best", "final"):
        raise UserError(f"value is {sweep.value!r}; it must be 'best' or 'final'")
    if not int(config.eval.every) and not config.eval.tasks:   # task evals have their own cadence
        raise UserError(f"the sweep's metric {sweep.metric!r} comes from evals, but "
                        f"config.eval.every is 0")
    make_pruner(sweep, int(config.train.steps))   # unknown pruner or option -> ValueError
    if sweep.sampler != "grid":
        sampler_cls = {"random": optuna.samplers.RandomSampler,
                       "tpe": optuna.samplers.TPESampler}[sweep.sampler]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sampler_cls(seed=0, **sweep.sampler_options)
        except TypeError as e:
            raise UserError(f"sampler {sweep.sampler!r}: {e}") from None
    elif sweep.sampler_options:
        raise UserError("a grid sweep takes no sampler_options")
    for point in list(sweep.points) + list(sweep.enqueue):
        for key, value in point.items():
            _check_value(config, key, value)
    for key, dist in sweep.space.items():
        if not isinstance(dist, optuna.distributions.BaseDistribution):
            raise UserError(f"search space entry {key!r} is {dist!r}; use loguniform, uniform, "
                            f"integer or choice")
        field = _field(config, key)
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            for option in dist.choices:
                _check_value(config, key, decode(option, field))
        elif isinstance(dist, optuna.distributions.FloatDistribution) and isinstance(field, int) \
                and not isinstance(field, bool):
            raise UserError(f"{key} is an int in the config; sweep it with integer(), not a "
                            f"float distribution")
        else:
            _check_value(config, key, dist.low)
    for point in sweep.enqueue:
        if set(point) - set(sweep.space):
            raise UserError(f"enqueued point sets {sorted(set(point) - set(sweep.space))}, "
                            f"which the search space does not have")


def _field(config, key: str):
    try:
        return config_lib.field(config, key)
    except KeyError as e:      # the loader's message, worded for a sweep
        raise UserError(str(e.args[0]).replace("unknown config key", "unknown sweep key")) from None


def _check_value(config, key: str, value) -> None:
    field = _field(config, key)
    if isinstance(field, ml_collections.ConfigDict):
        raise UserError(f"sweep key {key!r} names a section of the config, not a value")
    if field is not None and isinstance(value, bool) != isinstance(field, bool):
        raise UserError(f"sweep value {value!r} ({type(value).__name__}) for {key} does not fit "
                        f"the config's {type(field).__name__} field")
    try:
        config_lib.override(config, {key: value})
    except TypeError:
        raise UserError(f"sweep value {value!r} ({type(value).__name__}) for {key} does not fit "
                        f"the config's {type(field).__name__} field") from None


def make_pruner(sweep: Sweep, total_steps: int) -> optuna.pruners.BasePruner:
    if sweep.pruner not in PRUNERS:
        raise UserError(f"unknown pruner {sweep.pruner!r} (known: {', '.join(PRUNERS)})")
    options = dict(sweep.pruner_options)
    if sweep.pruner == "hyperband":
        options.setdefault("max_resource", total_steps)   # resource = training steps
    try:
        return PRUNERS[sweep.pruner](**options)
    except TypeError as e:
        raise UserError(f"pruner {sweep.pruner!r}: {e}") from None


def fingerprint(sweep: Sweep, config) -> str:
    """A text that changes when the sweep or its base config does: a study made from another
    definition is refused instead of silently mixed in."""
    body = {"points": list(sweep.points), "space": {k: optuna.distributions.distribution_to_json(d)
                                                     for k, d in sorted(sweep.space.items())},
            "sampler": sweep.sampler, "metric": sweep.metric, "mode": sweep.mode,
            "value": sweep.value, "config": json.loads(config.to_json())}
    return json.dumps(body, sort_keys=True, default=repr)
