"""Range checks of an objective's own settings, for ``Objective.check_config``.

Each raises ``SettingError``, one line naming the field (``config.dpo.beta``), the range it must
be in and the value given: a setting that makes the objective meaningless (a DPO beta of 0, a
prefix fraction below 0, a span density that leaves no noise) stops the run before its data is
read, instead of training toward nothing without a word.
"""
from __future__ import annotations

import numbers

from pretrainx.errors import UserError


class SettingError(UserError):
    """An objective setting out of its range (or an impossible combination); names the field."""


def value(config, dotted: str):
    """``config.<dotted>``, read directly (the presets hold every field the objective reads)."""
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def number(config, dotted: str, low: float = float("-inf"), high: float = float("inf"), *,
           low_open: bool = False, high_open: bool = False) -> float:
    """The field as a float, in [low, high] (an end excluded where ``*_open``)."""
    x = value(config, dotted)
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise SettingError(f"config.{dotted} must be a number, got {x!r}")
    below = x <= low if low_open else x < low
    above = x >= high if high_open else x > high
    if below or above or x != x:
        if high == float("inf"):
            bound = f"{'>' if low_open else '>='} {low:g}"
        elif low == float("-inf"):
            bound = f"{'<' if high_open else '<='} {high:g}"
        else:
            bound = (f"in {'(' if low_open else '['}{low:g}, {high:g}"
                     f"{')' if high_open else ']'}")
        raise SettingError(f"config.{dotted} must be {bound}, got {x:g}")
    return float(x)


def integer(config, dotted: str, minimum: int, maximum: int | None = None) -> int:
    """The field as an int in [minimum, maximum]."""
    x = value(config, dotted)
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or int(x) != x:
        raise SettingError(f"config.{dotted} must be an integer, got {x!r}")
    if x < minimum or (maximum is not None and x > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise SettingError(f"config.{dotted} must be {bound}, got {x}")
    return int(x)


def choice(config, dotted: str, choices) -> str:
    x = value(config, dotted)
    if x not in choices:
        raise SettingError(f"config.{dotted} must be one of {', '.join(map(repr, choices))}, "
                           f"got {x!r}")
    return x
