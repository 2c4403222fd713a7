"""Run the tuning notebooks headless, as `make notebooks` does.

Each notebook runs top to bottom in a fresh kernel in this folder, on an in-memory copy: the
committed ``.ipynb`` keeps no outputs. What it printed (its tables and recommendation) is shown
here, the executed copy (tables and plots) is written to ``--out`` (a new temporary folder by
default), and its figure to ``figures/<name>.png`` (``--figures``), the PNGs docs/benchmarks.md shows::

    .venv/bin/python notebooks/execute.py [NAME ...] [--out DIR] [--figures DIR]
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat

NOTEBOOKS = Path(__file__).resolve().parent
FIGURES = NOTEBOOKS / "figures"
NAMES = ("tuning", "blend_weights", "aits_split", "deadline")


def execute(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` with its outputs, run top to bottom (the file is not written)."""
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def _outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def printed(notebook: nbformat.NotebookNode) -> str:
    """Everything the notebook printed, in order."""
    return "".join(o.get("text", "") for o in _outputs(notebook) if o.output_type == "stream" and o.name == "stdout")


def figures(notebook: nbformat.NotebookNode) -> list[bytes]:
    """The PNG of every plot the notebook showed, in order."""
    return [base64.b64decode(o["data"]["image/png"]) for o in _outputs(notebook) if "image/png" in o.get("data", {})]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the tuning notebooks headless and save their figures.")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(NAMES)} (all by default)")
    parser.add_argument("--out", type=Path, help="where the executed copies go (default: a new temporary folder)")
    parser.add_argument("--figures", type=Path, default=FIGURES, help=f"where each figure goes (default: {FIGURES})")
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.names) - set(NAMES)):
        parser.error(f"no such notebook: {', '.join(unknown)}")
    out = args.out or Path(tempfile.mkdtemp(prefix="goat-notebooks-"))
    out.mkdir(parents=True, exist_ok=True)
    args.figures.mkdir(parents=True, exist_ok=True)
    for name in args.names or NAMES:
        print(f"==== {name}.ipynb", flush=True)
        started = time.perf_counter()
        notebook = execute(name)
        print(printed(notebook), flush=True)
        nbformat.write(notebook, out / f"{name}.ipynb")
        *_, figure = figures(notebook)
        (args.figures / f"{name}.png").write_bytes(figure)
        print(f"==== {name}: ran in {time.perf_counter() - started:.0f} s; executed copy {out / f'{name}.ipynb'}, "
              f"figure {args.figures / f'{name}.png'}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
