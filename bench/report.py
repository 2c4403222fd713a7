"""What a section hands back, and how it is shown: percentiles, Markdown tables, JSON files."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class SectionResult:
    name: str  # also the JSON file's name: <out>/<name>.json
    data: dict[str, Any]  # everything measured, JSON-able
    tables: list[str] = field(default_factory=list)  # Markdown, in reading order
    figures: list[Path] = field(default_factory=list)


def distribution(values: Iterable[float]) -> dict[str, float | int]:
    """p50, p95, max (and mean, n) of ``values``, in their unit, rounded to 0.01."""
    array = np.asarray(list(values), dtype=float)
    if array.size == 0:
        return {"n": 0, "p50": math.nan, "p95": math.nan, "max": math.nan, "mean": math.nan}
    p50, p95 = np.percentile(array, [50, 95])
    return {
        "n": int(array.size),
        "p50": round(float(p50), 2),
        "p95": round(float(p95), 2),
        "max": round(float(array.max()), 2),
        "mean": round(float(array.mean()), 2),
    }


def mean(values: Iterable[float]) -> float:
    array = np.asarray(list(values), dtype=float)
    return float(array.mean()) if array.size else math.nan


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> str:
    cells = [[_cell(value) for value in row] for row in rows]
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def save_figure(fig: Any, path: Path) -> Path:
    """Write a matplotlib figure to ``path`` (its folder made if missing), and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def percent(share: float) -> str:
    return "–" if math.isnan(share) else f"{share:.1%}"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.1f}"
    return str(value).replace("|", "\\|")


def write_json(out: Path, result: SectionResult) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{result.name}.json"
    # NaN is not JSON: an empty distribution is written as null.
    path.write_text(json.dumps(_without_nan(result.data), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _without_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_nan(item) for item in value]
    return value
