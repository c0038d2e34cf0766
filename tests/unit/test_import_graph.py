"""The import graph of ``src/xiaoshuo``, read with ``ast`` (every import, function-level lazy ones included):
layers point one way, there are no cycles, and no module imports another's private name.

Rules (issue 20, item 6): ``engine`` never imports ``training`` (adapters are :mod:`xiaoshuo.adapters`, below
both); ``data`` never imports the test kit ``testing``; no cycle between xiaoshuo's subpackages and top-level
modules, nor between any two modules; no ``from a import _x`` across modules.  Failures name file and line.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import xiaoshuo

ROOT = Path(xiaoshuo.__file__).parent


@dataclass(frozen=True)
class Edge:
    source: str  # importing module
    target: str  # imported module
    name: str | None  # the name of a ``from target import name``
    line: int

    def where(self) -> str:
        what = f"from {self.target} import {self.name}" if self.name else f"import {self.target}"
        return f"{self.source}:{self.line}: {what}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


@cache
def edges() -> tuple[Edge, ...]:
    """Every import of a xiaoshuo module by a xiaoshuo module; ``from pkg import mod`` imports ``pkg.mod``."""
    found = []
    mods = modules()
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found += [Edge(name, a.name, None, node.lineno) for a in node.names if _ours(a.name)]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not _ours(target):
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.append(
                        Edge(name, sub, None, node.lineno)
                        if sub in mods
                        else Edge(name, target, alias.name, node.lineno)
                    )
    return tuple(found)


def _ours(module: str) -> bool:
    return module == "xiaoshuo" or module.startswith("xiaoshuo.")


def _unit(module: str) -> str:
    """A subpackage or top-level module: ``xiaoshuo.engine.base`` → ``xiaoshuo.engine``."""
    return ".".join(module.split(".")[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def _explain(components: list[list[str]], key) -> list[str]:
    """The imports that make each cycle, as ``module:line: import …``."""
    lines = []
    for component in components:
        members = set(component)
        lines.append(" ↔ ".join(component))
        lines += [
            "    " + e.where()
            for e in edges()
            if key(e.source) in members and key(e.target) in members and key(e.source) != key(e.target)
        ]
    return lines


def test_the_graph_is_read() -> None:
    """The reader sees lazy (function-level) imports: engine.loading imports its backends inside functions."""
    targets = {e.target for e in edges() if e.source == "xiaoshuo.engine.loading"}
    assert {"xiaoshuo.engine.vllm_backend", "xiaoshuo.engine.openai_backend"} <= targets
    assert len(modules()) > 50
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_engine_never_imports_training() -> None:
    bad = [
        e.where()
        for e in edges()
        if _unit(e.source) == "xiaoshuo.engine" and _unit(e.target) == "xiaoshuo.training"
    ]
    assert not bad, "\n".join(bad)


def test_adapters_sit_below_engine_and_training() -> None:
    above = {"xiaoshuo.engine", "xiaoshuo.training", "xiaoshuo.cli", "xiaoshuo.webui", "xiaoshuo.writing"}
    bad = [e.where() for e in edges() if _unit(e.source) == "xiaoshuo.adapters" and _unit(e.target) in above]
    assert not bad, "\n".join(bad)


def test_data_never_imports_the_test_kit() -> None:
    bad = [
        e.where() for e in edges() if _unit(e.source) == "xiaoshuo.data" and e.target == "xiaoshuo.testing"
    ]
    assert not bad, "\n".join(bad)


def test_no_cycle_between_packages_and_top_level_modules() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for e in edges():
        if _unit(e.source) != _unit(e.target):
            graph[_unit(e.source)].add(_unit(e.target))
    assert not (found := _cycles(graph)), "\n".join(_explain(found, _unit))


def test_no_cycle_between_modules() -> None:
    """Finer than packages: e.g. memory.store ↔ memory.retrieval, engine.loading ↔ its backends."""
    mods = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for e in edges():
        if e.target in mods and e.target != e.source:
            graph[e.source].add(e.target)
    assert not (found := _cycles(graph)), "\n".join(_explain(found, lambda m: m))


def test_no_private_name_is_imported_across_modules() -> None:
    bad = [
        e.where()
        for e in edges()
        if e.name and e.name.startswith("_") and not e.name.startswith("__") and e.source != e.target
    ]
    assert not bad, "\n".join(bad)
