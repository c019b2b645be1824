"""LoRA (Hu et al. 2021): fine-tune a large imported model through low-rank adapters.

With ``config.lora.rank`` r > 0 the objective's parameter tree is split once, when the state is
built (core/state.py):

    params (trained, with optimiser state)      frozen["lora_base"] (carried, never updated)
      adapters/<kernel path>/{a, b}               every other parameter of the objective's tree
      full/<path>  (``lora.train``: new heads)

A kernel W whose path matches ``lora.targets`` gets A (its input axes x r, small random) and
B (r x its output axes, zeros, so step 0 is the base model). The model sees
``W + (alpha / r) A B``, formed by ``merge`` in one place: ``TrainState.model_params`` (the train
step, validation, sampling and export all read it). The objectives and models never know:
they get the tree ``objective.init`` made, with the same paths and shapes.

A and B keep their kernel's logical axis names (the rank axis is unsharded), so the mesh rules
that shard the kernel shard its adapters; Adam's moments follow them.
"""
from __future__ import annotations

import dataclasses
import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from pretrainx.config.check import ConfigError

BASE = "lora_base"            # the key of the frozen base weights in TrainState.frozen
ADAPTERS, FULL = "adapters", "full"


@dataclasses.dataclass(frozen=True)
class LoraSpec:
    rank: int
    alpha: float
    targets: tuple[str, ...]      # regexes (re.search) over "/"-joined parameter paths
    train: tuple[str, ...]        # paths trained in full (new heads), before ``targets``

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @classmethod
    def from_config(cls, config) -> "LoraSpec | None":
        """The ``lora`` section; None when ``rank`` is 0 (full fine-tuning, the old path)."""
        c = config.lora
        if int(c.rank) < 0 or float(c.alpha) <= 0:
            raise ConfigError(f"lora.rank must be >= 0 and lora.alpha > 0, got rank {c.rank}, "
                              f"alpha {c.alpha}")
        if int(c.rank) == 0:
            return None
        for pattern in (*c.targets, *c.train):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ConfigError(f"lora: {pattern!r} is not a regular expression ({e})") from None
        return cls(int(c.rank), float(c.alpha), tuple(map(str, c.targets)),
                   tuple(map(str, c.train)))

    def role(self, path: str, ndim: int) -> str:
        """FULL, ADAPTERS or BASE for the parameter at ``path``."""
        if any(re.search(p, path) for p in self.train):
            return FULL
        if ndim >= 2 and any(re.search(p, path) for p in self.targets):
            return ADAPTERS
        return BASE


def _flat(tree) -> dict:
    return traverse_util.flatten_dict(tree, sep="/") if tree else {}


def _unflat(flat: dict) -> dict:
    return traverse_util.unflatten_dict(flat, sep="/")


def input_axes(names) -> int:
    """How many leading axes of a kernel are its input: a projection back to the residual stream
    ((heads, kv, embed): attention's output) contracts all but the last; any other kernel
    ((embed, heads, kv), (embed, mlp), (mlp, embed)) its first."""
    return len(names) - 1 if names[-1] == "embed" and names[0] != "embed" else 1


def _adapter(leaf, rank: int, key):
    """{"a": (in..., r) random with std 1/sqrt(fan in), "b": (r, out...) zeros}, boxed with
    the kernel's logical names when the kernel is boxed."""
    value = nn.unbox(leaf)
    names = getattr(leaf, "names", None) or (None,) * value.ndim
    k = input_axes(names)
    fan_in = math.prod(value.shape[:k])
    a = jax.random.normal(key, (*value.shape[:k], rank), value.dtype) / math.sqrt(fan_in)
    b = jnp.zeros((rank, *value.shape[k:]), value.dtype)
    if not isinstance(leaf, nn.Partitioned):
        return {"a": a, "b": b}
    return {"a": leaf.replace(value=a, names=(*names[:k], None)),
            "b": leaf.replace(value=b, names=(None, *names[k:]))}


def split(params, spec: LoraSpec, rng) -> tuple[dict, dict]:
    """(trainable params: adapters and the fully trained paths, the frozen base) of the
    objective's (possibly boxed) parameter tree."""
    flat = _flat(params)
    groups = {ADAPTERS: {}, FULL: {}, BASE: {}}
    for i, (path, leaf) in enumerate(sorted(flat.items())):
        role = spec.role(path, nn.unbox(leaf).ndim)
        groups[FULL if role == FULL else BASE][path] = leaf
        if role == ADAPTERS:
            groups[ADAPTERS][path] = _adapter(leaf, spec.rank, jax.random.fold_in(rng, i))
    if not groups[ADAPTERS]:
        # numbered layers once each: "h_*/attn/query/kernel"
        kernels = sorted({re.sub(r"_\d+(?=/)", "_*", p) for p, leaf in flat.items()
                          if nn.unbox(leaf).ndim >= 2})
        raise ConfigError(f"lora.targets {list(spec.targets)} match no kernel of this model "
                          f"(its matrices: {', '.join(kernels)})")
    trainable = {ADAPTERS: _unflat({f"{p}/{ab}": v for p, pair in groups[ADAPTERS].items()
                                    for ab, v in pair.items()})}
    if groups[FULL]:        # no empty subtree: a checkpoint restores no empty dict
        trainable[FULL] = _unflat(groups[FULL])
    return trainable, _unflat(groups[BASE])


def join(trainable, base) -> dict:
    """The objective's tree of the base and the fully trained paths, adapters left out: what
    ``init_from`` loads into (another run's weights land in the base)."""
    return _unflat({**_flat(base), **_flat(trainable.get(FULL, {}))})


def separate(tree, trainable) -> tuple[dict, dict]:
    """``join``'s inverse: (trainable with its fully trained paths from ``tree``, the base)."""
    full = _flat(trainable.get(FULL, {}))
    flat = _flat(tree)
    out = dict(trainable)
    if full:
        out[FULL] = _unflat({p: flat[p] for p in full})
    return out, _unflat({p: v for p, v in flat.items() if p not in full})


def merge(trainable, base, scale: float) -> dict:
    """The weights the model sees: each adapted kernel W + scale * A B, the fully trained
    paths as they are, the rest of the base unchanged."""
    flat = {**_flat(base), **_flat(trainable.get(FULL, {}))}
    adapters = _flat(trainable[ADAPTERS])
    for path in {p.rsplit("/", 1)[0] for p in adapters}:
        a, b = adapters[f"{path}/a"], adapters[f"{path}/b"]
        kernel = flat[path]
        flat[path] = kernel + (scale * jnp.tensordot(a, b, axes=1)).astype(kernel.dtype)
    return _unflat(flat)


__all__ = ["LoraSpec", "BASE", "split", "join", "separate", "merge", "input_axes"]
