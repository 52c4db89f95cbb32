"""The import rules of DESIGN §1, read from the source with ``ast`` (no module is imported, so this is fast).

- production (agent, generators, trainers, prompts) never imports ``simulator``, not even inside a function:
  the simulator is a plugin found through the ``distill.teacher_servers`` entry point;
- ``generators`` and ``trainers`` never import each other: they meet only in ``agent``;
- torch and the Hugging Face training stack are imported only inside ``trainers/``, so the CLI starts fast;
- no import cycle among our modules at import time.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCTION = ("agent", "generators", "trainers", "prompts")
OURS = (*PRODUCTION, "simulator")
HEAVY = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen in module ``source``."""

    source: str  # dotted module that contains the statement
    target: str  # dotted module imported (the deepest one of ours that exists, else the name as written)
    line: int
    module_level: bool  # executed when ``source`` is imported (not inside a function or TYPE_CHECKING)

    def where(self) -> str:
        return f"{module_path(self.source)}:{self.line} imports {self.target}"


def module_path(module: str) -> str:
    path = REPO / Path(*module.split("."))
    return str((path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).relative_to(REPO))


@cache
def our_modules() -> frozenset[str]:
    modules: set[str] = set()
    for package in OURS:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return frozenset(modules)


def _resolve(name: str) -> str:
    """``a.b.c`` → the deepest of ``a.b.c``, ``a.b``, ``a`` that is one of our modules (else ``name``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in our_modules():
            return candidate
    return name


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _base(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module a ``from … import`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join([*anchor, node.module] if node.module else anchor)


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.imports: list[Import] = []
        self.depth = 0  # > 0 inside a function or a TYPE_CHECKING block

    def _deferred(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _deferred

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node):
            self._deferred(node)
        else:
            self.generic_visit(node)

    def _add(self, target: str, node: ast.stmt) -> None:
        self.imports.append(Import(self.module, _resolve(target), node.lineno, self.depth == 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_Call(self, node: ast.Call) -> None:
        """``importlib.import_module("x")`` and ``__import__("x")`` with a literal name count as imports of x."""
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        first = node.args[0] if node.args else None
        if name in ("import_module", "__import__") and isinstance(first, ast.Constant) and isinstance(first.value, str):
            self.imports.append(Import(self.module, _resolve(first.value), node.lineno, False))
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _base(self.module, node, self.is_package)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            self._add(submodule if submodule in our_modules() else base, node)


@cache
def all_imports() -> tuple[Import, ...]:
    found: list[Import] = []
    for module in sorted(our_modules()):
        path = REPO / module_path(module)
        collector = _Collector(module, path.name == "__init__.py")
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        found += collector.imports
    return tuple(found)


def _top(name: str) -> str:
    return name.split(".")[0]


def _violations(sources: tuple[str, ...], targets: tuple[str, ...]) -> list[str]:
    found = [imp.where() for imp in all_imports() if _top(imp.source) in sources and _top(imp.target) in targets]
    return list(dict.fromkeys(found))  # one line per statement, however many names it imports


def test_the_collector_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The rules below are only as good as the collector: check it on one module with every form."""
    source = (
        "from __future__ import annotations\n"
        "import os\n"
        "from typing import TYPE_CHECKING\n"
        "from agent import spec\n"
        "from . import store\n"
        "from .spec import SpecError\n"
        "if TYPE_CHECKING:\n"
        "    from simulator import SimulatorConfig\n"
        "def later():\n"
        "    import torch.nn\n"
        "    importlib.import_module('simulator.server')\n"
    )
    collector = _Collector("agent.example", is_package=False)
    collector.visit(ast.parse(source))
    seen = {(imp.target, imp.module_level) for imp in collector.imports}
    assert seen == {
        ("__future__", True),
        ("os", True),
        ("typing", True),
        ("agent.spec", True),
        ("agent.store", True),
        ("simulator", False),
        ("torch.nn", False),
        ("simulator.server", False),
    }


def test_production_never_imports_the_simulator() -> None:
    found = _violations(PRODUCTION, ("simulator",))
    assert not found, (
        "production code must reach the simulator only through the 'distill.teacher_servers' entry point "
        "(agent.teacher_endpoint.teacher_server): " + "; ".join(found)
    )


@pytest.mark.parametrize(("source", "target"), [("generators", "trainers"), ("trainers", "generators")])
def test_generators_and_trainers_meet_only_in_agent(source: str, target: str) -> None:
    found = _violations((source,), (target,))
    assert not found, f"{source} must not import {target} (they meet only in agent): " + "; ".join(found)


def test_the_training_stack_is_imported_only_in_trainers() -> None:
    found = _violations(tuple(p for p in OURS if p != "trainers"), HEAVY)
    assert not found, (
        f"{', '.join(HEAVY)} belong in trainers/ (the CLI and the agent must start without them): " + "; ".join(found)
    )


def _find_cycle(graph: dict[str, list[Import]]) -> list[Import] | None:
    """One cycle of ``graph`` as its edges, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        path: list[Import] = []
        stack = [(root, iter(graph[root]))]
        state[root] = 1
        while stack:
            node, edges = stack[-1]
            edge = next(edges, None)
            if edge is None:
                state[node] = 2
                stack.pop()
                if path:
                    path.pop()
                continue
            if state.get(edge.target) == 1:
                start = next(i for i, e in enumerate([*path, edge]) if e.source == edge.target)
                return [*path, edge][start:]
            if edge.target not in state:
                state[edge.target] = 1
                path.append(edge)
                stack.append((edge.target, iter(graph.get(edge.target, []))))
    return None


def module_graph() -> dict[str, list[Import]]:
    """Edges between our modules that run at import time."""
    graph: dict[str, list[Import]] = {m: [] for m in our_modules()}
    for imp in all_imports():
        if imp.module_level and imp.target in our_modules() and imp.target != imp.source:
            graph[imp.source].append(imp)
    return graph


def test_find_cycle_reports_the_edges_of_a_cycle() -> None:
    a_b, b_c, c_a = Import("a", "b", 1, True), Import("b", "c", 2, True), Import("c", "a", 3, True)
    assert _find_cycle({"a": [a_b], "b": [b_c], "c": []}) is None
    assert _find_cycle({"a": [a_b], "b": [b_c], "c": [c_a]}) == [a_b, b_c, c_a]


def test_our_modules_import_each_other_without_cycles() -> None:
    cycle = _find_cycle(module_graph())
    assert cycle is None, (
        "import cycle "
        + " → ".join([cycle[0].source, *(e.target for e in cycle)])
        + " ("
        + "; ".join(e.where() for e in cycle)
        + "): move the shared piece into a module both can import, or register through a table"
    )
