"""The graph package keeps its boundaries: no app imports, pyvis and file writes in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GRAPH = Path(__file__).resolve().parents[2] / "graph"
MODULES = sorted(GRAPH.glob("*.py"))


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_graph_module_imports_nothing_of_the_app(path: Path) -> None:
    assert not imported_roots(path) & {"db", "elicit", "pages", "streamlit", "sqlmodel"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_graph_module_imports_pyvis_only_in_visualise(path: Path) -> None:
    assert ("pyvis" in imported_roots(path)) == (path.name == "visualise.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_graph_module_writes_files_only_in_formats(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    writes = any(
        token in text for token in ("write_text(", "write_bytes(", "open(", "mkdir(", ".to_csv(")
    )
    assert not writes or path.name == "formats.py"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_graph_module_never_prints(path: Path) -> None:
    calls = [
        node
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]
    assert calls == []
