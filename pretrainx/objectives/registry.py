"""The objective registry: ``config.objective`` names a registered class.

A name is either one an objective registered with ``@register("name")`` in a module of this
package (imported by ``pretrainx.objectives``), or ``"path/to/file.py:name"``: the file is
imported first (once per path; relative paths are taken from the working directory, and the
run's saved ``config.json`` holds them absolute) and its ``@register("name")`` makes the name
known. So a new objective can live in one file of its own, outside the package, and a config
names it: nothing else changes.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from typing import Callable

from pretrainx.errors import UserError

_REGISTRY: dict[str, Callable] = {}
_DEFINED_IN: dict[str, str | None] = {}      # name -> the file whose class statement registered it


def register(name: str):
    """Class decorator: ``@register("clm")`` makes ``config.objective = "clm"`` pick the class."""
    defined_in = sys._getframe(1).f_globals.get("__file__")    # the module making the class

    def wrap(cls):
        old = _REGISTRY.get(name)
        if old is not None and old is not cls and not _same_definition(old, cls, defined_in):
            raise UserError(f"objective {name!r} registered twice ({old.__module__}."
                            f"{old.__qualname__} and {cls.__module__}.{cls.__qualname__})")
        _REGISTRY[name] = cls
        _DEFINED_IN[name] = defined_in
        return cls
    return wrap


def _same_definition(old, new, new_file) -> bool:
    """One class statement run twice: a file imported under its module name by one caller (a
    test, a config loader) and by path by a config naming ``file.py:name``."""
    old_file = _DEFINED_IN.get(next(k for k, v in _REGISTRY.items() if v is old))
    try:
        return (old.__qualname__ == new.__qualname__ and bool(old_file and new_file)
                and os.path.samefile(old_file, new_file))
    except OSError:
        return False


def split_file_name(name: str) -> tuple[str | None, str]:
    """``"dir/file.py:toy"`` -> ("dir/file.py", "toy"); a plain name -> (None, name)."""
    path, sep, short = name.rpartition(":")
    if sep and path.endswith(".py"):
        return path, short
    return None, name


def import_file(path: str) -> None:
    """Import the Python file at ``path`` once (its ``@register`` calls run)."""
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config.objective names {path!r}, which is not a file")
    for module in list(sys.modules.values()):
        if os.path.abspath(getattr(module, "__file__", None) or "") == path:
            return                                    # already imported (under any name)
    module_name = "pretrainx_objective_" + hashlib.sha1(path.encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise


def get(name: str) -> Callable:
    """The objective class ``config.objective`` names (a file's objective: imported first)."""
    path, short = split_file_name(name)
    if path is not None:
        import_file(path)
        if short not in _REGISTRY:
            raise UserError(f"{path} registers no objective {short!r}; registered: "
                            f"{sorted(_REGISTRY)}")
        return _REGISTRY[short]
    if name not in _REGISTRY:
        raise UserError(f"unknown objective {name!r}; registered: {sorted(_REGISTRY)} (or "
                        f"'path/to/file.py:name' for one defined in a file of its own)")
    return _REGISTRY[name]


def names() -> list[str]:
    return sorted(_REGISTRY)
