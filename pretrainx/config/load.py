"""Load ``get_config(arg)`` files by path, as ``pretrainx train --config path.py:arg`` does."""
from __future__ import annotations

import ast
import importlib.util
import os

import ml_collections


def load(spec: str) -> ml_collections.ConfigDict:
    """``"configs/gpt/shakespeare_char.py:smoke"`` -> the ConfigDict that file returns."""
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {path}")
    module_spec = importlib.util.spec_from_file_location(f"_pretrainx_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


def override(config: ml_collections.ConfigDict, updates: dict) -> ml_collections.ConfigDict:
    """A copy with dotted keys replaced; an unknown key is an error naming it."""
    config = ml_collections.ConfigDict(config.to_dict())
    for dotted, value in updates.items():
        *parents, leaf = dotted.split(".")
        node = config
        for p in parents:
            if p not in node:
                raise KeyError(f"unknown config key {dotted!r} ({p!r} is not in the config)")
            node = node[p]
        if leaf not in node:
            raise KeyError(f"unknown config key {dotted!r}")
        node[leaf] = value
    return config


def parse_overrides(pairs: list[str]) -> dict:
    """``["model.dtype=bfloat16", "train.steps=10"]`` -> ``{"model.dtype": "bfloat16", ...}`` for
    ``override``: a value that reads as a Python literal becomes one, anything else stays text."""
    updates = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"config override {pair!r} is not KEY=VALUE")
        try:
            updates[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            updates[key] = text
    return updates
