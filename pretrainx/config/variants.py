"""Variants of a recipe: ``path.py:ARG`` where ARG is a comma-separated set of flags.

One naming scheme for every recipe in ``configs/``:

- ``smoke`` is always the CPU-sized, standalone variant (no file but ../shared/data, about a
  minute on 2 CPU cores, its loss falls); ``cpu`` is a longer CPU run of the same recipe.
- Other flags name one change each: ``cond`` (class-conditional with guidance), ``flow`` (the
  flow objective in place of DDPM), ``ddpm``, ``jpeg``, ``distill``, ``v1_0`` (a paper's older
  architecture).
- Flags compose: ``fashion_mnist_dit.py:flow,smoke`` is the flow objective at smoke size. The
  order does not matter; each recipe lists the combinations it supports, and any other ARG is
  one ``ValueError`` naming them.

``get_config(arg)`` starts with ``flags = variants.parse(arg, __file__, "smoke", "flow,smoke")``
and tests ``"smoke" in flags``; ``get_sweep(arg)`` uses the same flags.
"""
from __future__ import annotations

import os

from pretrainx.errors import UserError


def _flags(text: str) -> frozenset[str]:
    return frozenset(f.strip() for f in text.split(",") if f.strip())


def parse(arg: str, recipe: str, *known: str) -> frozenset[str]:
    """The flags of ``arg`` if they are one of the ``known`` combinations ("" always is)."""
    flags = _flags(arg or "")
    if flags and flags not in {_flags(k) for k in known}:
        name = os.path.splitext(os.path.basename(recipe))[0]
        raise UserError(f"unknown variant {arg!r} of {name} (known: {', '.join(known) or 'none'})")
    return flags
