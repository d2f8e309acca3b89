"""The house rules of imports (docs/architecture.md), read from the source with ``ast``.

- Which package may import which (every import, function-level ones included).
- ``shared/core`` imports no torch, OpenCV, numba, dlib or SQLAlchemy; ``shared/models`` and
  ``shared/blend`` know nothing of jobs, storage or configuration.
- ``api/`` and ``workers/`` never import SQLAlchemy nor touch an engine: SQL is
  ``shared/jobs``'s alone.
- The API process never imports torch: nothing the API imports at module level reaches it.
- No import cycle among project modules (module-level imports).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("facedit", "api", "workers", "shared")
HEAVY = {"torch", "cv2", "numba", "dlib", "scipy", "skimage", "face_recognition_models"}

# Which project areas each area may import (an area is a package or a shared/ subpackage).
ALLOWED: dict[str, set[str]] = {
    "facedit": {"*"},
    "api": {"api", "shared.core", "shared.jobs"},
    "workers": {"workers", "shared"},
    "shared.core": {"shared.core"},
    "shared.jobs": {"shared.jobs", "shared.core", "shared.editing"},
    "shared.editing": {"shared.editing", "shared.core", "shared.models", "shared.blend"},
    "shared.models": {"shared.models", "shared.core.errors", "shared.core.contracts"},
    "shared.blend": {"shared.blend", "shared.models", "shared.core.errors",
                     "shared.core.contracts"},
    "shared.metrics": {"shared.metrics", "shared.models", "shared.core"},
    "shared.train": {"shared.train", "shared.editing", "shared.models", "shared.blend",
                     "shared.metrics", "shared.core"},
}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (absolute dotted name)
    module_level: bool  # not inside a function and not under `if TYPE_CHECKING`
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            found[_module_name(path)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, module_level: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, False)
        elif isinstance(child, ast.If) and _is_type_checking(child):
            yield from _walk(child, False)
        else:
            yield child, module_level
            yield from _walk(child, module_level)


@cache
def imports_of(module: str) -> tuple[Import, ...]:
    path = project_modules()[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node, module_level in _walk(tree, True):
        if isinstance(node, ast.Import):
            found += [Import(module, a.name, module_level, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from package import module` imports the submodule when there is one
                candidate = f"{base}.{alias.name}"
                target = candidate if candidate in project_modules() else base
                found.append(Import(module, target, module_level, node.lineno))
    return tuple(found)


def _area(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "shared" and len(parts) > 1 else parts[0]


def _inside(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _all_imports() -> list[Import]:
    return [i for module in sorted(project_modules()) for i in imports_of(module)]


def test_packages_import_only_what_the_layering_allows() -> None:
    wrong = []
    for imp in _all_imports():
        if imp.target.split(".")[0] not in PACKAGES or imp.target == "shared":
            continue
        allowed = ALLOWED.get(_area(imp.source))
        if allowed is None or "*" in allowed:
            continue
        if not any(_inside(imp.target, prefix) for prefix in allowed):
            wrong.append(f"{imp.source}:{imp.line} imports {imp.target}")
    assert not wrong, "imports the layering does not allow:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    "area, banned",
    [("shared.core", HEAVY | {"sqlalchemy", "numpy", "PIL"}),
     ("api", HEAVY | {"sqlalchemy"}),
     ("workers", {"sqlalchemy"}),
     ("shared.models", {"sqlalchemy", "boto3", "celery", "fastapi"}),
     ("shared.blend", {"sqlalchemy", "boto3", "celery", "fastapi"})],
)
def test_areas_do_not_import_banned_libraries(area: str, banned: set[str]) -> None:
    wrong = [f"{i.source}:{i.line} imports {i.target}" for i in _all_imports()
             if _inside(i.source, area) and i.target.split(".")[0] in banned]
    assert not wrong, "\n".join(wrong)


def test_api_and_workers_never_touch_an_engine() -> None:
    pattern = re.compile(r"\.engine\b|\bcreate_engine\b|\btext\(\s*[\"']\s*(SELECT|UPDATE|INSERT)",
                         re.IGNORECASE)
    wrong = []
    for module, path in project_modules().items():
        if module.split(".")[0] in ("api", "workers"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    wrong.append(f"{module}:{number}: {line.strip()}")
    assert not wrong, "\n".join(wrong)


def _module_level_closure(start: str) -> set[str]:
    """Every module ``start`` imports at module level, transitively (project and external)."""
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        if module not in project_modules():
            continue
        parts = module.split(".")
        parents = [".".join(parts[:n]) for n in range(1, len(parts))]  # packages run first
        todo += [p for p in parents if p in project_modules()]
        todo += [i.target for i in imports_of(module) if i.module_level]
    return seen


def test_the_api_process_never_imports_torch() -> None:
    reached = _module_level_closure("api.app")
    heavy = sorted(m for m in reached if m.split(".")[0] in HEAVY)
    assert not heavy, f"api.app reaches {heavy} at import time"


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Cycles of a directed graph (depth first; each back edge reported once)."""
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_import_cycles_among_project_modules() -> None:
    graph = {m: sorted({i.target for i in imports_of(m) if i.module_level
                        and i.target in project_modules() and i.target != m})
             for m in project_modules()}
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_the_rules_see_real_imports() -> None:
    """The checks above would pass vacuously if the parser found nothing."""
    assert len(project_modules()) > 80
    runner = {i.target for i in imports_of("shared.jobs.runner")}
    assert {"shared.core.contracts", "shared.editing.faces"} <= runner
    lazy = [i for i in imports_of("shared.editing.bundle") if not i.module_level]
    assert any(i.target == "shared.models.stylegan2" for i in lazy)
    assert "torch" in _module_level_closure("shared.editing.pipeline")
    assert find_cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": ["b"], "b": [], "c": ["a", "b"]}) == []
