"""A config's values checked when a run starts, before data is read or anything compiles.

Each bad value becomes one ``ConfigError`` line naming the field and the fix, instead of a
``ZeroDivisionError`` at the first log step, an exit 0 that did nothing, or NaN logits that get
the advice "lower the learning rate". Values an objective or a data kind owns are checked there
(``TextOptions``, the beta schedule); this file holds what the runner itself reads.
"""
from __future__ import annotations

import numbers
import os

from pretrainx.errors import UserError


class ConfigError(UserError):
    """A config value that cannot run; the message names the field."""


def _get(config, dotted: str):
    """The field's value, None where the config has no such field."""
    node = config
    for part in dotted.split("."):
        if not hasattr(node, "get") or part not in node:
            return None
        node = node[part]
    return node


def _integer(config, dotted: str, *, minimum: int) -> int | None:
    value = _get(config, dotted)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or int(value) != value:
        raise ConfigError(f"config.{dotted} must be an integer, got {value!r}")
    if value < minimum:
        what = "positive" if minimum == 1 else f">= {minimum}"
        raise ConfigError(f"config.{dotted} must be {what}, got {value}")
    return int(value)


def _number(config, dotted: str, *, low: float, high: float | None = None,
            high_open: bool = False) -> float | None:
    value = _get(config, dotted)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"config.{dotted} must be a number, got {value!r}")
    above = high is not None and (value >= high if high_open else value > high)
    if value < low or above or value != value:
        bound = "" if high is None else f", {high}{')' if high_open else ']'}"
        raise ConfigError(f"config.{dotted} must be in [{low}{bound or ', inf)'}, got {value}")
    return float(value)


def _choice(config, dotted: str, choices: tuple) -> None:
    value = _get(config, dotted)
    if value is not None and value not in choices:
        raise ConfigError(f"config.{dotted} must be one of {', '.join(map(repr, choices))}, "
                          f"got {value!r}")


def check_values(config) -> None:
    """Every runner field with a wrong type or an impossible value -> ``ConfigError``. A field the
    config lacks is not checked (a section another objective reads, or a test's partial config)."""
    _check_runner(config)
    _check_optimizer(config)
    _check_data_and_samples(config)
    _check_model(config)


def _check_runner(config) -> None:
    for dotted in ("batch_size", "train.steps", "train.log_every", "checkpoint.every",
                   "checkpoint.keep", "eval.batch_size", "train.preemption_check_every",
                   "eval.tasks_batch_size"):
        _integer(config, dotted, minimum=1)
    for dotted in ("eval.every", "eval.num_batches", "seed", "eval.tasks_every", "eval.tasks_limit",
                   "train.steps_per_dispatch"):
        _integer(config, dotted, minimum=0)
    _choice(config, "checkpoint.best_mode", ("min", "max"))


def _check_optimizer(config) -> None:
    _integer(config, "optimizer.grad_accum", minimum=1)
    _integer(config, "optimizer.warmup_steps", minimum=0)
    _integer(config, "optimizer.decay_steps", minimum=0)
    for dotted in ("optimizer.lr", "optimizer.weight_decay", "optimizer.clip_norm",
                   "optimizer.end_lr", "optimizer.decay_rate", "optimizer.eps"):
        _number(config, dotted, low=0.0)
    for dotted in ("optimizer.ema_decay", "optimizer.b1", "optimizer.b2"):
        _number(config, dotted, low=0.0, high=1.0, high_open=True)


def _check_data_and_samples(config) -> None:
    _integer(config, "data.max_bytes", minimum=0)
    _integer(config, "data.max_docs", minimum=0)
    _number(config, "data.val_fraction", low=0.0, high=1.0, high_open=True)
    _choice(config, "data.decode_errors", ("replace", "strict"))
    # Used by the text samples at every eval: a bad one would stop the run after its training.
    _number(config, "sample.temperature", low=0.0)
    _integer(config, "sample.top_k", minimum=0)
    _integer(config, "sample.max_new_tokens", minimum=0)
    for dotted in ("sample.steps", "sample.batch_size"):
        _integer(config, dotted, minimum=1)
    _integer(config, "sample.num_samples", minimum=0)
    _number(config, "sample.eta", low=0.0)
    for dotted in ("eval.grid_samples", "eval.fid_num_samples", "eval.fid_num_reference"):
        _integer(config, dotted, minimum=0)


def _check_model(config) -> None:
    # Sizes a model is built from: a 0 would be a ZeroDivisionError (heads) or a model of nothing.
    for dotted in ("model.vocab_size", "model.num_layers", "model.num_heads", "model.embed_dim",
                   "model.ch", "model.norm_groups"):
        _integer(config, dotted, minimum=1)
    _integer(config, "model.num_classes", minimum=0)
    _number(config, "model.mlp_ratio", low=0.0)
    for dotted in ("model.dropout", "model.attention_dropout", "loss.label_smoothing"):
        _number(config, dotted, low=0.0, high=1.0, high_open=True)   # p = 1 drops everything
    _number(config, "diffusion.cfg_drop", low=0.0, high=1.0)
    _integer(config, "diffusion.timesteps", minimum=2)
    _choice(config, "model.dtype", ("float32", "bfloat16", "float16"))   # jnp dtype names
    num_heads, embed_dim = _get(config, "model.num_heads"), _get(config, "model.embed_dim")
    _integer(config, "model.head_size", minimum=0)
    # an explicit head_size (T5 v1.1: 64 per head, any width) needs no divisibility
    if embed_dim and num_heads and not _get(config, "model.head_size") and embed_dim % num_heads:
        raise ConfigError(f"config.model.embed_dim ({embed_dim}) must be divisible by "
                          f"config.model.num_heads ({num_heads})")
    seq_len = _integer(config, "data.seq_len", minimum=1)
    max_len = _integer(config, "model.max_len", minimum=1)
    if seq_len is not None and max_len is not None and seq_len > max_len:
        # Positions past max_len have no embedding: the logits would be NaN from the first step.
        raise ConfigError(f"config.data.seq_len ({seq_len}) is longer than config.model.max_len "
                          f"({max_len}): raise model.max_len or lower data.seq_len")


def check_eval_batch(config, divisor: int, processes: int) -> None:
    """The validation batch splits over the batch-sharded devices like the training batch: caught
    here rather than at the first eval, after the training it would waste."""
    if not int(config.eval.every) or not int(config.eval.num_batches):
        return
    size = int(config.eval.batch_size)
    if size % divisor or size % processes:
        raise ConfigError(f"config.eval.batch_size {size} must be divisible by the batch-sharded "
                          f"devices ({divisor}) and the processes ({processes})")


def resolve_paths(config):
    """A copy of ``config`` with its relative file paths made absolute (``~`` expanded), so the
    run's config.json works from any directory (``pretrainx eval`` / ``sample`` elsewhere).
    "stdlib", "" and names that are not paths (a tokenizer kind) stay as they are."""
    import ml_collections
    config = ml_collections.ConfigDict(config.to_dict())

    def absolute(path):
        if isinstance(path, (list, tuple)):
            return type(path)(absolute(p) for p in path)
        if not isinstance(path, str) or not path or path == "stdlib":
            return path
        return os.path.abspath(os.path.expanduser(path))

    for dotted in ("data.path", "data.tfds_data_dir", "init_from.workdir", "eval.fid_cache_dir"):
        parent, _, leaf = dotted.rpartition(".")
        node = _get(config, parent)
        if node is not None and leaf in node:
            node[leaf] = absolute(node[leaf])
    for source in (_get(config, "init_from.also") or {}).values():   # further runs to load
        if source.workdir:
            source.workdir = absolute(source.workdir)
    objective_file, sep, name = str(config.get("objective", "")).rpartition(":")
    if sep and objective_file.endswith(".py"):      # an objective in a file of its own
        config.objective = f"{absolute(objective_file)}:{name}"
    tokenizer = _get(config, "data.tokenizer")
    if isinstance(tokenizer, str) and os.path.exists(os.path.expanduser(tokenizer)):
        config.data.tokenizer = absolute(tokenizer)    # a saved tokenizer, not a kind like "char"
    return config
