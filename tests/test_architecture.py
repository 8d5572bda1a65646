"""The shape of the house: the import graph of the library packages (built with ``ast``) has no cycle,
every import between packages points down the layers, no library module imports benchmarks/,
experiments/, tests/, main.py or a config file (configs/<sde>/*.py), no package holds more than 25% of
the library's lines and no module is longer than 500 lines. The checkers are themselves checked on
graphs that break each rule."""
from __future__ import annotations

import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: library package -> layer; an import from one package to another must go to a strictly lower layer
LAYERS = {
    "sde_lib": 0, "configs": 0,           # configs: the schema (default.py) and the config converters
    "models": 1, "samplers": 1, "likelihood": 1, "scoredata": 1,
    "plotting": 2,
    "evaluation": 3,
    "training": 4, "quality": 4,          # quality: the old import path of evaluation.distances
    "workflows": 5,
}
#: what sits on top of the library (may import it, never the other way round): scripts, tests and the
#: config files themselves (configs/<sde>/<name>.py, which take defaults from the library)
OUTSIDE = ("benchmarks", "experiments", "tests", "main", "configs.ve", "configs.vp", "configs.subvp")


def is_outside(module: str, outside=OUTSIDE) -> bool:
    return any(module == o or module.startswith(o + ".") for o in outside)
MAX_SHARE = 0.25
MAX_LINES = 500


# ----------------------------------------------------------------------------- the graph
def _module_files(package: str) -> dict[str, str]:
    """dotted module name -> file path, for every .py file of ``package``."""
    out = {}
    for d, dirs, files in os.walk(os.path.join(ROOT, package)):
        dirs[:] = [x for x in dirs if not x.startswith((".", "__pycache__"))]
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(d, f)
                mod = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[mod[: -len(".__init__")] if mod.endswith(".__init__") else mod] = path
    return out


def _imports(mod: str, path: str, modules: set[str]) -> set[str]:
    """Every module ``mod`` imports (module level and inside functions), resolved to dotted names."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    is_pkg = path.endswith("__init__.py")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            subs = {f"{name}.{a.name}" for a in node.names if f"{name}.{a.name}" in modules}
            out.update(subs)       # ``from pkg import submodule`` imports the submodule
            if len(subs) < len(node.names):
                out.add(name)      # ... and any other name comes from the module ``name`` itself
    return out


def build_graph(packages) -> tuple[dict[str, set[str]], dict[str, str]]:
    files = {}
    for p in packages:
        files.update(_module_files(p))
    files = {m: p for m, p in files.items() if not is_outside(m)}
    modules = set(files)
    graph = {m: {t for t in _imports(m, path, modules) if t != m} for m, path in files.items()}
    return graph, files


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (restricted to its own nodes) as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for t in sorted(graph.get(n, ())):
            if t not in graph:
                continue
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def layer_violations(graph: dict[str, set[str]], layers: dict[str, int], outside=OUTSIDE) -> list[str]:
    bad = []
    for m, targets in sorted(graph.items()):
        src = m.split(".")[0]
        for t in sorted(targets):
            dst = t.split(".")[0]
            if is_outside(t, outside):
                bad.append(f"{m} imports {t} (outside the library)")
            elif dst in layers and dst != src and layers[dst] >= layers[src]:
                bad.append(f"{m} (layer {layers[src]}) imports {t} (layer {layers[dst]})")
    return bad


def line_count(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f)


@pytest.fixture(scope="module")
def library():
    return build_graph(LAYERS)


# ----------------------------------------------------------------------------- the rules
def test_every_library_package_has_a_layer():
    """A new top-level package must be placed in LAYERS (or outside the library) before it is used."""
    from setuptools import find_packages
    top = {p.split(".")[0] for p in find_packages(ROOT, exclude=["tests*"])}
    assert top - set(LAYERS) - {o.split(".")[0] for o in OUTSIDE} == set(), top


def test_no_import_cycles(library):
    graph, _ = library
    assert find_cycle(graph) is None, find_cycle(graph)
    packages = {m.split(".")[0]: set() for m in graph}
    for m, targets in graph.items():
        packages[m.split(".")[0]].update(t.split(".")[0] for t in targets if t.split(".")[0] != m.split(".")[0])
    assert find_cycle(packages) is None, find_cycle(packages)


def test_imports_point_down_the_layers(library):
    graph, _ = library
    assert layer_violations(graph, LAYERS) == []


def test_no_package_holds_more_than_a_quarter_of_the_library(library):
    _, files = library
    per_package: dict[str, int] = {}
    for m, path in files.items():
        per_package[m.split(".")[0]] = per_package.get(m.split(".")[0], 0) + line_count(path)
    total = sum(per_package.values())
    shares = {p: n / total for p, n in per_package.items()}
    print("\nlibrary lines:", total, {p: f"{n} ({shares[p]:.1%})" for p, n in sorted(per_package.items())})
    assert max(shares.values()) <= MAX_SHARE, shares


def test_no_module_over_500_lines(library):
    _, files = library
    paths = list(files.values()) + [os.path.join(ROOT, "main.py")]
    for folder in ("benchmarks", "experiments"):
        paths += [p for p in _module_files(folder).values()]
    long = {os.path.relpath(p, ROOT): line_count(p) for p in paths if line_count(p) > MAX_LINES}
    assert long == {}, long


# ----------------------------------------------------------------------------- the checkers fail when they should
def test_checkers_catch_cycles_upward_imports_and_outside_imports():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"os"}}) is None
    layers = {"low": 0, "high": 1, "peer": 1}
    assert layer_violations({"high.x": {"low.y"}}, layers) == []
    assert layer_violations({"low.y": {"high.x"}}, layers) == ["low.y (layer 0) imports high.x (layer 1)"]
    assert layer_violations({"high.x": {"peer.z"}}, layers) == ["high.x (layer 1) imports peer.z (layer 1)"]
    assert layer_violations({"low.y": {"benchmarks.compare_samplers"}}, layers) == [
        "low.y imports benchmarks.compare_samplers (outside the library)"]


def test_graph_resolves_relative_and_function_level_imports(tmp_path, monkeypatch):
    """The parser sees ``from .x import``, ``from pkg import submodule`` and imports inside functions."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n    return b\n")
    (pkg / "b.py").write_text("from . import a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    graph, _ = build_graph(["pkg"])
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
