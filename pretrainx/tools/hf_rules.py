"""The tensor rules of a Hugging Face family (hf_families.py, hf_families_encoders.py): each
Hugging Face tensor, the pretrainx parameter(s) it becomes, and the two pure reshapes between
them (transposes and reshapes only, so a round trip is bit-exact)."""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from pretrainx.errors import UserError


class UnsupportedCheckpoint(UserError):
    """A Hugging Face checkpoint whose architecture pretrainx cannot load exactly."""


@dataclasses.dataclass(frozen=True)
class Rule:
    hf: str                                            # the Hugging Face tensor's name
    ours: tuple[str, ...]                              # the pretrainx parameter path(s) it fills
    split: Callable[[np.ndarray], list[np.ndarray]]    # HF tensor -> our arrays (in ``ours`` order)
    join: Callable[[list[np.ndarray]], np.ndarray]     # our arrays -> the HF tensor


def same(hf: str, ours: str, shape: tuple | None = None) -> Rule:
    """A tensor stored the same way on both sides (optionally reshaped: biases per head)."""
    hf_shape = None if shape is None else (int(np.prod(shape)),)
    return Rule(hf, (ours,), lambda w: [w if shape is None else w.reshape(shape)],
                lambda a: a[0] if hf_shape is None else a[0].reshape(hf_shape))


def linear(hf: str, ours: str, in_dim: int, shape: tuple) -> Rule:
    """A torch ``Linear`` weight (out, in) -> our kernel (in, ...) of ``shape``."""
    return Rule(hf, (ours,), lambda w: [w.T.reshape(shape)],
                lambda a: np.ascontiguousarray(a[0].reshape(in_dim, -1).T))


def conv1d(hf: str, ours: str, in_dim: int, shape: tuple) -> Rule:
    """A GPT-2 ``Conv1D`` weight, stored (in, out) already -> our kernel of ``shape``."""
    return Rule(hf, (ours,), lambda w: [w.reshape(shape)], lambda a: a[0].reshape(in_dim, -1))


def fused_qkv(hf: str, prefix: str, what: str, shape: tuple) -> Rule:
    """GPT-2's ``c_attn`` (E, 3E) weight or (3E,) bias -> query, key, value of ``shape``."""
    ours = tuple(f"{prefix}/{n}/{what}" for n in ("query", "key", "value"))
    axis = 1 if what == "kernel" else 0
    flat = (lambda a: a.reshape(a.shape[0], -1)) if what == "kernel" else (lambda a: a.reshape(-1))
    return Rule(hf, ours, lambda w: [p.reshape(shape) for p in np.split(w, 3, axis=axis)],
                lambda arrays: np.concatenate([flat(a) for a in arrays], axis=axis))
