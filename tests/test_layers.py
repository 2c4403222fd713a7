"""The packages import one way (bot → bench → graph → nodes → memory): the import-linter
contracts in pyproject.toml, checked on every run of the suite."""

from __future__ import annotations

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
