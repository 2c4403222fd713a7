"""The packages import one way (bot → bench → graph → nodes → memory): the import-linter
contracts in pyproject.toml, checked on every run of the suite."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_packages_import_one_way():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert f"{len(contracts)} kept, 0 broken" in done.stdout


def test_code_outside_memory_enters_it_through_few_doors():
    """The façade, the public types (settings, errors, turns) and the rooms' packages: at most
    eight of memory's modules are imported from outside it, lazy imports included."""
    import grimp

    graph = grimp.build_graph("bench", "bot", "graph", "nodes", "memory", cache_dir=None)
    outside = {module for package in ("bench", "bot", "graph", "nodes")
               for module in graph.find_descendants(package) | {package}}
    doors = {imported for importer in outside for imported in graph.find_modules_directly_imported_by(importer)
             if imported == "memory" or imported.startswith("memory.")}
    assert doors == {"memory.facade", "memory.settings", "memory.errors", "memory.turns",
                     "memory.stores", "memory.encoders", "memory.retrieval", "memory.prompt"}


NAMED_TUPLE_API = {"_asdict", "_fields", "_make", "_replace"}


def _private_names_of_memory() -> set[str]:
    """The private names memory/ defines: its modules' ``_names``, its classes' ``_methods`` and
    the ``self._attributes`` they set."""
    names: set[str] = set()
    for path in (ROOT / "memory").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    # A named tuple's own API is spelt with an underscore and is public.
    return {name for name in names if name.startswith("_") and not name.startswith("__")} - NAMED_TUPLE_API


def test_code_outside_memory_reaches_no_private_name_of_it():
    """What memory keeps to itself (its stores, its search, its archiver, its helpers) is
    reached through the façade's verbs only: no import of a private name from memory, and no
    attribute of that name read off anything but the code's own ``self``."""
    private = _private_names_of_memory()
    reached = []
    for package in ("bench", "bot", "graph", "nodes", "notebooks"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("memory"):
                    reached += [f"{path.relative_to(ROOT)}: import {a.name}" for a in node.names if a.name in private]
                elif (isinstance(node, ast.Attribute) and node.attr in private
                      and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                    reached.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert reached == []
