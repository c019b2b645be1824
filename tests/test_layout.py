"""The package's shape: no import cycles between its modules (imports inside functions count: they
hide a cycle, they do not remove it) and no module over 400 lines."""
import ast
import os

import pytest

PACKAGE = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "pretrainx"))
MAX_LINES = 400


def modules() -> dict[str, str]:
    """Dotted module name -> file, for every .py file of the package."""
    root = os.path.dirname(PACKAGE)
    out = {}
    for d, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(d, f)
                name = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                out[name.removesuffix(".__init__")] = path
    return out


def import_graph(mods: dict[str, str]) -> dict[str, set[str]]:
    graph = {m: set() for m in mods}
    for m, path in mods.items():
        package = m if path.endswith("__init__.py") else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            # a package's __init__ importing its own submodules is how packages work, not a cycle
            graph[m] |= {t for t in targets if t in mods and t != m and not m.startswith(t + ".")}
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or None (depth-first search, three colours)."""
    state, stack = {}, []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == "open":
                return stack[stack.index(v):] + [v]
            if v not in state and (found := visit(v)):
                return found
        stack.pop()
        state[u] = "done"
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_in_pretrainx():
    cycle = find_cycle(import_graph(modules()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("name,path", sorted(modules().items()))
def test_no_module_over_400_lines(name, path):
    with open(path) as f:
        lines = sum(1 for _ in f)
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it along a seam"


#: which layers each layer may import (docs/design.md, "The layers"): imports point down.
ALLOWED = {
    "errors": set(),    # the bottom: every layer raises its user errors from here
    "models": {"models", "errors"},
    "data": {"data", "errors"},
    "evaluators": {"evaluators", "data", "models", "errors"},
    "objectives": {"objectives", "models", "data", "evaluators", "errors"},
    "config": {"config", "errors"},
    "run": {"run", "config", "errors"},
    "core": {"core", "config", "run", "data", "objectives", "models", "evaluators", "errors"},
    "tools": {"tools", "core", "config", "run", "data", "objectives", "models", "evaluators",
              "errors"},
}
#: the known exceptions, each with its reason
EXCEPTIONS = {
    # the mesh helpers are a leaf module (jax only); samplers place their rows on the run's mesh
    ("objectives", "core.sharding"),
}


def layer_of(module: str) -> str:
    """``pretrainx.core.train`` -> ``core``; ``pretrainx.main`` -> ``main``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "top"


def layering_violations(graph) -> list[str]:
    out = []
    for m, targets in graph.items():
        layer = layer_of(m)
        for t in targets:
            if any(u.startswith(t + ".") for u in targets):
                continue        # `from pretrainx.core import sharding`: the module is the target
            t_layer = layer_of(t)
            if layer in ("top", "main") or t == "pretrainx":
                continue
            exempt = (layer, t.removeprefix("pretrainx.")) in EXCEPTIONS
            if t_layer not in ALLOWED.get(layer, {layer}) and not exempt:
                out.append(f"{m} -> {t}")
    return sorted(out)


def test_the_layer_checker_finds_an_upward_import():
    graph = {"pretrainx.models.gpt": {"pretrainx.core.train"}, "pretrainx.core.train":
             {"pretrainx.models.gpt", "pretrainx.objectives.base"}}
    assert layering_violations(graph) == ["pretrainx.models.gpt -> pretrainx.core.train"]


def test_imports_point_down_the_layers():
    assert layering_violations(import_graph(modules())) == []


def test_top_level_holds_only_subpackages_and_entry_modules():
    top = sorted(f for f in os.listdir(PACKAGE) if f.endswith(".py"))
    assert top == ["__init__.py", "errors.py", "main.py"], top
