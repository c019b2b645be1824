"""Mixtures of token streams with weights: ``data.sources = "web:/data/web:0.7,books:/data/b:0.3"``.

Row ``j`` of global batch ``i`` draws its source and its window start from the batch's own
generator (``base.batch_rng(seed, i, stream)``): the source is the first uniform draw placed in the
cumulative weights, so each row's source is a pure function of (seed, global row index) and the
share of rows from a source is a binomial draw around its weight. A process reads only its rows,
so one process and two give the same rows, and a resumed run asks for the same index and gets the
same rows. A mixture changed on resume (``data.sources`` is a safe change, see run/rundir.py)
applies from the resume's batch index: earlier batches are never re-read.

The streams are anything with ``len`` and ``windows(starts, width)`` (``shards.ShardStream``);
``shards.build_shards`` opens the folders, checks their tokenizer and builds one
:class:`MixtureWindows` over the training splits and one over the validation splits, whose
``parts`` are each source's validation windows alone (for a ``val/<source>/loss``).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re

import numpy as np

from pretrainx.data.base import TOKENS, Batch, batch_rng, shard_rows
from pretrainx.errors import UserError

#: a source's name becomes part of a metric's key (``val/<name>/loss``)
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class MixtureError(UserError):
    """A ``data.sources`` that cannot be read; the message names the source."""


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    path: str
    weight: float


def parse_sources(spec: str) -> tuple[Source, ...]:
    """``"name:path:weight,..."`` -> the sources, in order. The name ends at the first ``:`` and
    the weight starts after the last, so a path may hold ``:`` (not ``,``)."""
    sources = []
    for item in (part.strip() for part in spec.split(",")):
        name, _, rest = item.partition(":")
        path, sep, weight = rest.rpartition(":")
        if not (name and path and sep):
            raise MixtureError(f"data.sources: {item!r} is not name:path:weight (e.g. "
                               f"web:/data/web_shards:0.7)")
        if not NAME.match(name):
            raise MixtureError(f"data.sources: source name {name!r} may hold only letters, "
                               f"digits, '_', '-' and '.' (it names the metric val/{name}/loss)")
        try:
            value = float(weight)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            raise MixtureError(f"data.sources: source {name!r} ({path}) has weight {weight!r}; a "
                               f"weight must be a number > 0 (leave a source out to drop it)")
        sources.append(Source(name, path, value))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise MixtureError(f"data.sources: a source name is given twice ({', '.join(names)})")
    return tuple(sources)


def absolute_sources(spec: str) -> str:
    """``spec`` with each folder made absolute (``~`` expanded), so the run's config.json reads
    the same folders from any directory (as ``config.check.resolve_paths`` does for data.path)."""
    if not spec:
        return spec
    return ",".join(f"{s.name}:{os.path.abspath(os.path.expanduser(s.path))}:{s.weight!r}"
                    for s in parse_sources(spec))


class MixtureWindows:
    """Windows of several token streams, each row's stream drawn with its weight (module
    docstring): ``inputs``/``targets`` cut from ``seq_len + 1`` tokens, or raw ``tokens`` rows
    with ``shift=False``, as ``sources.TokenWindows`` gives them for one stream."""

    def __init__(self, streams: dict, weights: dict[str, float], batch_size: int, seq_len: int,
                 seed: int, stream: int, shift: bool = True, parts: dict | None = None):
        self.names = tuple(streams)
        self.streams = [streams[n] for n in self.names]
        self.width = seq_len + 1 if shift else seq_len
        for name, tokens in streams.items():
            if len(tokens) <= self.width:
                raise MixtureError(f"data.sources: source {name!r} holds {len(tokens)} tokens, too "
                                   f"few for windows of {self.width}")
        shares = np.array([weights[n] for n in self.names], np.float64)
        self.weights = shares / shares.sum()
        self.cumulative = np.cumsum(self.weights)
        self.cumulative[-1] = 1.0               # a draw in [0, 1) always lands on a source
        self.last_starts = np.array([len(t) - self.width for t in self.streams], np.int64)
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        self.stream, self.shift = stream, shift
        #: source name -> that source's windows alone (validation: a loss per source)
        self.parts = parts or {}

    def rows(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(source number, window start) of each row of global batch ``index``, all processes'."""
        rng = batch_rng(self.seed, index, self.stream)
        which = np.searchsorted(self.cumulative, rng.random(self.batch_size), side="right")
        return which, rng.integers(0, self.last_starts[which] + 1)

    def get_batch(self, index: int, shard: tuple[int, int] = (0, 1)) -> Batch:
        which, starts = self.rows(index)
        mine = shard_rows(self.batch_size, shard)
        which, starts = which[mine], starts[mine]
        windows = np.empty((len(which), self.width), np.int32)
        for k, tokens in enumerate(self.streams):
            chosen = which == k
            if chosen.any():
                windows[chosen] = tokens.windows(starts[chosen], self.width)
        if not self.shift:
            return {TOKENS: windows}
        return {"inputs": windows[:, :-1], "targets": windows[:, 1:]}
