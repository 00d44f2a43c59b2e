"""The engine package's layering, read from its source: no import circle inside it, and no
import (lazy ones included) of Django, the API, the request log, metrics or the runtime that
composes them (inference/runtime.py is the only place that knows both sides)."""
from __future__ import annotations

import ast
from pathlib import Path

import inference.engine

ENGINE = Path(inference.engine.__file__).parent
FORBIDDEN = ("django", "rest_framework", "inference.api", "inference.models", "inference.metrics",
             "inference.runtime")


def module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it, relative imports resolved."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


GRAPH = {module_name(p): imports_of(p) for p in ENGINE.rglob("*.py")}


def test_the_engine_imports_nothing_of_the_web_app():
    reaches = {m: sorted(i for i in imported if i.startswith(FORBIDDEN)) for m, imported in GRAPH.items()}
    assert {m: r for m, r in reaches.items() if r} == {}


def test_no_import_circle_inside_the_engine():
    edges = {m: {i for i in imported if i in GRAPH and i != m} for m, imported in GRAPH.items()}
    # The package face imports its parts; the parts never import the face.
    assert not any("inference.engine" in targets for m, targets in edges.items())
    done, path = set(), []

    def visit(module: str) -> None:
        assert module not in path, f"import circle: {' -> '.join(path[path.index(module):] + [module])}"
        if module in done:
            return
        path.append(module)
        for target in sorted(edges[module]):
            visit(target)
        path.pop()
        done.add(module)

    for module in sorted(edges):
        visit(module)
