"""The objective contract: the one seam through which every training objective plugs into the runner.

The runner (``pretrainx.train``) never branches on the objective's name. It asks the registry for
``config.objective``, then uses only the methods below. An objective owns its model(s), the
host-side corruption of a batch (masking, span corruption, noising), a pure loss, and optionally
evaluators and a sampler.

Shapes of the pieces the runner relies on:
  * ``init(rng) -> Params``: the trainable parameters, as a pytree whose leaves may be boxed with
    ``nn.with_logical_partitioning`` (the runner reads their logical axis names, maps them to the
    mesh with ``config.sharding.rules`` and initialises them already sharded).
  * ``init_frozen(rng) -> pytree``: parameters that are carried but never trained (a reference
    policy for PPO/DPO, a reward model). Same boxing rules; empty dict by default.
  * ``transform(batch, rng) -> batch``: numpy in, numpy out, on the host, before the batch is
    sharded. ``rng`` is a ``np.random.Generator`` seeded from (seed, step), so it is reproducible
    and resumable.
  * ``loss_fn(params, batch, rng, *, train, frozen) -> (loss, metrics)``: pure and jittable;
    ``metrics`` is a flat dict of scalar means (they are averaged over micro-batches and devices).
  * ``evaluators()``: extra evaluations (FID, sample grids, text samples) run every eval period.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Protocol

import jax
import numpy as np

Params = Any
Batch = dict[str, Any]
Metrics = dict[str, jax.Array]


@dataclasses.dataclass
class EvalContext:
    """What an evaluator gets: the weights to evaluate and where to put artefacts."""
    params: Params            # EMA parameters when the run keeps an EMA, else the live ones
    frozen: Params
    step: int
    workdir: str
    rng: jax.Array
    mesh: Any
    val_data: Any             # a BatchSource for the validation split (may be None)
    tokenizer: Any = None
    final: bool = False       # the run's last eval (or `pretrainx eval`): costly extras run here


class Evaluator(Protocol):
    """An evaluation run every ``config.eval.every`` steps; yields (metric name, value)."""
    name: str

    def __call__(self, ctx: EvalContext) -> Iterable[tuple[str, float]]: ...


class Objective:
    """Base class with the defaults most objectives want; subclasses override what differs."""

    #: dict keys every batch for this objective must hold (checked once, with a clear error).
    batch_keys: tuple[str, ...] = ()
    #: name of the token count in a batch, for tokens/s and MFU; None for non-token objectives.
    tokens_key: str | None = None

    def __init__(self, config):
        self.config = config
        self.tokenizer = None
        self.data_info: dict = {}

    def bind_data(self, dataset) -> None:
        """Called once by the runner with the built ``Dataset`` (tokenizer, sizes) before init."""
        self.tokenizer = dataset.tokenizer
        self.data_info = dict(dataset.info)

    # --- parameters -------------------------------------------------------------------------
    def init(self, rng: jax.Array) -> Params:
        raise NotImplementedError

    def init_frozen(self, rng: jax.Array) -> Params:
        return {}

    # --- data side --------------------------------------------------------------------------
    def transform(self, batch: Batch, rng: np.random.Generator) -> Batch:
        return batch

    # --- the loss ---------------------------------------------------------------------------
    def loss_fn(self, params: Params, batch: Batch, rng: jax.Array, *, train: bool,
                frozen: Params) -> tuple[jax.Array, Metrics]:
        raise NotImplementedError

    # --- evaluation and generation ------------------------------------------------------------
    def evaluators(self) -> list[Evaluator]:
        return []

    def sample_command(self, ctx: EvalContext, options: dict) -> str:
        """``pretrainx sample``: generate with trained weights (``ctx.params``); returns the text to
        print. ``options`` holds the CLI's flags (prompt, max_new_tokens, temperature, top_k,
        steps, sampler, guidance, num_samples, seed) with None for those not given."""
        raise NotImplementedError(f"objective {type(self).__name__} has no sampler")

    def flops_per_token(self) -> float | None:
        """Training FLOPs per token (forward + backward) for MFU; None where it does not apply."""
        return None

    def check_batch(self, batch: Batch) -> None:
        missing = [k for k in self.batch_keys if k not in batch]
        if missing:
            raise ValueError(
                f"objective {type(self).__name__} needs batch keys {list(self.batch_keys)}; "
                f"the data pipeline gave {sorted(batch)} (missing {missing})")


_REGISTRY: dict[str, Callable[..., Objective]] = {}


def register(name: str):
    """Class decorator: ``@register("clm")`` makes ``config.objective = "clm"`` pick the class."""
    def wrap(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"objective {name!r} registered twice")
        _REGISTRY[name] = cls
        return cls
    return wrap


def get(name: str) -> Callable[..., Objective]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown objective {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def names() -> list[str]:
    return sorted(_REGISTRY)
