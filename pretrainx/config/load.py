"""Load ``get_config(arg)`` files by path, as ``pretrainx train --config path.py:arg`` does."""
from __future__ import annotations

import ast
import importlib.util
import os

import ml_collections

from pretrainx.errors import UnknownName, UserError


def load(spec: str) -> ml_collections.ConfigDict:
    """``"configs/gpt/shakespeare_char.py:smoke"`` -> the ConfigDict that file returns."""
    path, _, arg = spec.partition(":")
    module = load_file(path, "config")
    return module.get_config(arg) if arg else module.get_config()


def load_file(path: str, what: str):
    """The user's Python file ``path`` (a ``what``: config, registry) as a module; missing or not
    valid Python -> one line naming it and the line (a library's syntax error stays a bug)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"_pretrainx_{what}_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        if os.path.abspath(e.filename or "") != os.path.abspath(path):
            raise
        raise UserError(f"{path}:{e.lineno}: not valid Python ({e.msg})") from None
    return module


def override(config: ml_collections.ConfigDict, updates: dict) -> ml_collections.ConfigDict:
    """A copy with dotted keys replaced; an unknown key is an error naming it and the known ones."""
    config = ml_collections.ConfigDict(config.to_dict())
    for dotted, value in updates.items():
        *parents, leaf = dotted.split(".")
        node = _node(config, dotted, parents)
        if leaf not in node:
            raise UnknownName(_unknown(dotted, leaf, node, parents))
        node[leaf] = value
    return config


def _node(config, dotted: str, parents: list[str]):
    node = config
    for i, part in enumerate(parents):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            raise UnknownName(_unknown(dotted, part, node, parents[:i]))
        node = node[part]
    if not isinstance(node, ml_collections.ConfigDict):
        raise UnknownName(f"unknown config key {dotted!r} ({'.'.join(parents)} is a value)")
    return node


def _unknown(dotted: str, part: str, node, walked: list[str]) -> str:
    where = ".".join(walked) or "the config"
    known = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else ""
    return f"unknown config key {dotted!r} ({part!r} is not in {where}; known: {known})"


# --- the one override syntax of every command: --config.KEY=VALUE ---------------------------
OVERRIDE_FLAG = "--config."


def split_override_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the other arguments, the ``KEY=VALUE`` texts of the ``--config.KEY=VALUE`` ones): every
    command takes its config overrides so, before its own flags are parsed."""
    rest, pairs = [], []
    for arg in argv:
        if arg.startswith(OVERRIDE_FLAG):
            if "=" not in arg:
                raise UserError(f"{arg!r}: a config override is --config.KEY=VALUE")
            pairs.append(arg[len(OVERRIDE_FLAG):])
        elif arg == "--set" or arg.startswith("--set="):   # the syntax of earlier releases
            raise UserError("--set KEY=VALUE is gone: write --config.KEY=VALUE")
        else:
            rest.append(arg)
    return rest, pairs


def parse_overrides(pairs: list[str], config: ml_collections.ConfigDict | None = None) -> dict:
    """``["model.dtype=bfloat16", "train.steps=10"]`` -> ``{"model.dtype": "bfloat16", ...}`` for
    ``override``: a value that reads as a Python literal becomes one, anything else stays text.
    Given ``config``, a text field takes the text as written (``--config.data.tokenizer=1`` is
    the string "1") and a bool field also reads true / false."""
    updates = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UserError(f"config override {pair!r} is not KEY=VALUE")
        current = field(config, key) if config is not None else None
        if isinstance(current, str):
            updates[key] = text
        elif isinstance(current, bool) and text.lower() in ("true", "false"):
            updates[key] = text.lower() == "true"
        else:
            try:
                updates[key] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                updates[key] = text
    return updates


def field(config, dotted: str):
    """The value (or section) at ``dotted``; an unknown key is a KeyError naming the known ones."""
    *parents, leaf = dotted.split(".")
    node = _node(config, dotted, parents)
    if leaf not in node:
        raise UnknownName(_unknown(dotted, leaf, node, parents))
    return node[leaf]


def apply_overrides(config: ml_collections.ConfigDict, pairs: list[str]) -> ml_collections.ConfigDict:
    """``config`` with the ``KEY=VALUE`` texts of ``--config.KEY=VALUE`` flags applied; a value
    of the wrong type is a one-line error naming the key."""
    updates = parse_overrides(pairs, config)
    for key, value in updates.items():
        try:
            config = override(config, {key: value})
        except TypeError:
            raise UserError(f"--config.{key}={value!r}: the config's field is "
                            f"{type(field(config, key)).__name__}") from None
    return config
