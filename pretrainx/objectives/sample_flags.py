"""The flags of ``pretrainx sample``, declared by each objective (``Objective.sample_options``).

The CLI reads ``--workdir`` first, builds the run's objective, and parses the rest of the
command line with the options that objective declares, so a PPO run takes ``--best-of`` and an
image run ``--sampler``, and a new objective brings its own flags without touching ``main.py``.
A flag the objective does not declare is a one-line error naming the ones it does.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable

from pretrainx.errors import UserError


@dataclasses.dataclass(frozen=True)
class SampleOption:
    """One flag: ``--max-new-tokens`` for name ``max_new_tokens``; ``default`` is what the
    objective uses when the flag is absent (usually the run's ``config.sample`` value)."""
    name: str
    type: Callable[[str], Any]
    help: str
    default: Any = None
    choices: tuple | None = None
    minimum: float | None = None     # counts and sizes: a smaller value is refused up front

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


class _OneLineErrors(argparse.ArgumentParser):
    """argparse that raises (one line for the CLI) instead of printing usage and exiting."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message}")


def parser_for(options, prog: str, description: str = "") -> argparse.ArgumentParser:
    """An argparse parser of ``options`` (no --help of its own: the caller prints it)."""
    p = _OneLineErrors(prog=prog, description=description, add_help=False,
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for o in options:
        p.add_argument(o.flag, dest=o.name, type=o.type, default=o.default, choices=o.choices,
                       help=o.help)
    return p


def parse(options, argv: list[str], prog: str) -> dict:
    """``argv`` parsed by ``options``: {name: value}, the declared default where a flag is absent.
    Unknown flags and values below an option's minimum are one-line ValueErrors."""
    args, unknown = parser_for(options, prog).parse_known_args(argv)
    if unknown:
        known = ", ".join(o.flag for o in options) or "none"
        raise UserError(f"{prog}: this run's objective takes no {unknown[0]!r}; its flags: {known}")
    values = vars(args)
    for o in options:
        value = values[o.name]
        if o.minimum is not None and value is not None and value < o.minimum:
            raise UserError(f"{o.flag} must be >= {o.minimum:g}, got {value}")
    return values


# The text objectives' common flags; their defaults come from the run's config.
def prompt(default: str) -> SampleOption:
    return SampleOption("prompt", str, "text to continue (or to fill)", default)


def max_new_tokens(default: int) -> SampleOption:
    return SampleOption("max_new_tokens", int, "tokens to generate at most", default, minimum=1)


def temperature(default: float) -> SampleOption:
    return SampleOption("temperature", float, "softmax temperature; 0 is greedy", default,
                        minimum=0)


def top_k(default: int | None) -> SampleOption:
    return SampleOption("top_k", int, "sample among the k most likely tokens (0: all)", default,
                        minimum=0)


def seed(default: int = 0) -> SampleOption:
    return SampleOption("seed", int, "random seed of the draws", default)
