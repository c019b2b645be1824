"""The data contract: random-access, deterministic batch sources and a registry of data sets.

Every training batch is a pure function of (seed, batch index). That makes resume exact with no
iterator pickling: the checkpoint stores the next batch index (``DataState``), and a restarted run
asks for the same index and gets the same rows. It is the same idea as grain's MapDataset (random
access + seeded shuffling), kept dependency-free so that it also runs where grain is not installed.

A source hands each JAX process only its own rows of the global batch (``shard``), so a
multi-host run never reads another host's data.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import numpy as np

from pretrainx.errors import UserError

Batch = dict[str, np.ndarray]

#: the field of raw token rows (``seq_len`` wide) that an objective building its own inputs and
#: targets asks for (``Objective.data_request``) instead of the next-token pair
#: ``inputs``/``targets``, which is cut from ``seq_len + 1`` tokens.
TOKENS = "tokens"


def raw_tokens(fields) -> bool:
    """Whether the requested ``fields`` ask for raw token rows rather than the shifted pair."""
    return fields is not None and TOKENS in fields


class BatchSource(Protocol):
    """Global batch ``index`` -> this process's rows, as a dict of numpy arrays."""

    #: rows in the *global* batch (all processes together)
    batch_size: int

    def get_batch(self, index: int, shard: tuple[int, int] = (0, 1)) -> Batch: ...


@dataclasses.dataclass
class DataState:
    """What the checkpoint stores about the data stream: the next global batch index."""
    next_index: int = 0

    def to_json(self) -> dict:
        return {"next_index": int(self.next_index)}

    @classmethod
    def from_json(cls, d: dict | None) -> "DataState":
        return cls(next_index=int((d or {}).get("next_index", 0)))


@dataclasses.dataclass
class Dataset:
    """What a data-set builder returns to the runner."""
    train: BatchSource
    val: BatchSource | None
    tokenizer: Any = None          # has .vocab_size, .encode, .decode, .save(dir) where text
    info: dict = dataclasses.field(default_factory=dict)   # e.g. {"train_tokens": 1003854}


def shard_rows(batch_size: int, shard: tuple[int, int]) -> slice:
    """The rows of a global batch that process ``shard[0]`` of ``shard[1]`` owns."""
    index, count = shard
    if batch_size % count:
        raise UserError(f"global batch size {batch_size} is not divisible by the "
                        f"{count} processes")
    per = batch_size // count
    return slice(index * per, (index + 1) * per)


def batch_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """The numpy generator for batch ``index``: independent of any other batch, so resumable.
    ``stream``: what the draws are for, one of the host streams named in ``data/rng.py``."""
    return np.random.default_rng([seed, stream, index])


_BUILDERS: dict[str, Callable[..., Dataset]] = {}


def register(kind: str):
    """Decorator: ``@register("text")`` makes ``config.data.kind = "text"`` use the builder.

    A builder is ``fn(data_config, *, batch_size, eval_batch_size, seq_len, seed[, fields,
    tokenizer]) -> Dataset``; ``seq_len`` is the raw length the objective asked for (None for
    non-sequence data); ``fields`` the batch keys it asked for (None: the builder's own);
    ``tokenizer`` a tokenizer to use instead of fitting one (a resumed run's saved one);
    ``special_tokens`` the tokens the objective needs in the vocabulary ([MASK], sentinels), to
    be added where the tokenizer lacks them before any text is encoded. The optional keywords
    are passed only when set, so a builder that needs none of them may omit them.
    """
    def wrap(fn):
        _BUILDERS[kind] = fn
        return fn
    return wrap


def build(data_config, *, batch_size: int, eval_batch_size: int, seq_len: int | None, seed: int,
          fields=None, tokenizer=None, special_tokens=()) -> Dataset:
    kind = data_config.kind
    if kind not in _BUILDERS:
        raise UserError(f"unknown data kind {kind!r} (config.data.kind); "
                        f"known: {sorted(_BUILDERS)}")
    optional = {k: v for k, v in dict(fields=fields, tokenizer=tokenizer,
                                      special_tokens=tuple(special_tokens) or None).items()
                if v is not None}
    return _BUILDERS[kind](data_config, batch_size=batch_size, eval_batch_size=eval_batch_size,
                           seq_len=seq_len, seed=seed, **optional)
