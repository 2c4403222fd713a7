"""The page's charts, as inline SVG drawn on the server (no script, no library): horizontal bars
with a label and a value each, and the candidates of a recall by distance with the gap filter's cut.
Every label is escaped; colours come from the stylesheet's classes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.web.html import h
from memory.turns import Verdict

WIDTH, LABEL, ROW, GAP = 760, 190, 18, 4  # px: the chart, the labels' column, a bar, between bars
BARS = WIDTH - LABEL - 110  # what the longest bar may take (its value is written after it)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    css: str = "bar"
    title: str = ""  # shown on hover: why, in words


def bars(rows: Iterable[Bar], unit: str, caption: str) -> str:
    """Horizontal bars, each scaled to the largest value."""
    rows = list(rows)
    if not rows:
        return ""
    top = max((row.value for row in rows), default=0) or 1
    drawn = [_bar(index * (ROW + GAP), row, row.value / top * BARS, unit) for index, row in enumerate(rows)]
    return _svg(len(rows) * (ROW + GAP), "".join(drawn), caption)


def _bar(y: float, row: Bar, length: float, unit: str) -> str:
    tip = f"<title>{h(row.title or f'{row.label}: {row.value:g} {unit}')}</title>"
    return (f'<g>{tip}<text x="{LABEL - 6}" y="{y + ROW - 5}" class="label" text-anchor="end">{h(row.label[:30])}</text>'
            f'<rect x="{LABEL}" y="{y}" width="{max(length, 1):.1f}" height="{ROW}" class="{h(row.css)}"/>'
            f'<text x="{LABEL + length + 4:.1f}" y="{y + ROW - 5}" class="value">{row.value:.4g} {h(unit)}</text></g>')


def _svg(height: float, inner: str, caption: str) -> str:
    return (f'<figure class="chart"><svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height + 4}" '
            f'viewBox="0 0 {WIDTH} {height + 4}" role="img" aria-label="{h(caption)}">{inner}</svg>'
            f'<figcaption>{h(caption)}</figcaption></figure>')


def budget_split(split: Mapping[str, int] | None, used: Mapping[str, int] | None) -> str:
    """The budget's tokens per layer: each layer's share (pale) and what it used (dark) on it."""
    split, used = split or {}, used or {}
    layers = [layer for layer in ("l0_l1", "l2", "l3") if layer in split or layer in used]
    rows: list[Bar] = []
    for layer in layers:
        name = {"l0_l1": "L0+L1 (persona, facts)", "l2": "L2 (recent turns)", "l3": "L3 (recalled)"}[layer]
        rows.append(Bar(f"{name} share", split.get(layer) or 0, "bar share"))
        rows.append(Bar(f"{name} used", used.get(layer) or 0, "bar used"))
    return bars(rows, "tokens", "the budget's split: each layer's share of the prompt, and the tokens it used")


def latencies(latency_ms: Mapping[str, float] | None) -> str:
    """Each node's latency."""
    rows = [Bar(node, round(ms, 1), "bar latency") for node, ms in (latency_ms or {}).items()]
    return bars(rows, "ms", "each step's latency (ms)")


def recall_candidates(verdicts: list[Verdict], injected: set[str]) -> str:
    """Every candidate of every ranked list by its distance on the query's scale (shorter: nearer
    by meaning), kept or not, and per list the gap filter's cut: the line between the farthest it
    kept and the nearest it dropped."""
    if not verdicts:
        return ""
    far = max(verdict["distance"] for verdict in verdicts) or 1.0
    scale = BARS / far
    drawn, y = [], 0.0
    for name, listed in _by_list(verdicts).items():
        drawn.append(f'<text x="0" y="{y + ROW - 5}" class="list">{h(name)}</text>')
        y += ROW + GAP
        top = y
        for verdict in listed:
            css = "bar injected" if verdict["id"] in injected else "bar kept" if verdict["kept"] else "bar dropped"
            drawn.append(_bar(y, Bar(verdict["id"], verdict["distance"], css, f"{verdict['id']}: {verdict['why']}"),
                              verdict["distance"] * scale, ""))
            y += ROW + GAP
        if (cut := _cut(listed)) is not None:
            x = LABEL + cut * scale
            drawn.append(f'<line x1="{x:.1f}" y1="{top - 2}" x2="{x:.1f}" y2="{y}" class="cut"/>'
                         f'<text x="{x + 3:.1f}" y="{top - 6}" class="cut-label">cut {cut:.3f}</text>')
    return _svg(y, "".join(drawn), "each candidate's distance on the query's scale (shorter: nearer); "
                "dark: injected, green: kept but did not fit, grey: dropped; the dashed line: the gap filter's cut")


def _by_list(verdicts: list[Verdict]) -> dict[str, list[Verdict]]:
    """The verdicts per ranked list, nearest first."""
    lists: dict[str, list[Verdict]] = {}
    for verdict in verdicts:
        lists.setdefault(verdict["list"], []).append(verdict)
    return {name: sorted(listed, key=lambda verdict: verdict["distance"]) for name, listed in lists.items()}


def _cut(listed: list[Verdict]) -> float | None:
    """Halfway between the farthest candidate that stood out on its own and the nearest judged not
    relevant beyond it (None when there is no such pair). The verdicts say which is which in their
    ``why`` (``memory/retrieval/choosing/merge.py``); a candidate kept for another reason (context, the turn
    beside the best, standing out in another list) does not move the cut."""
    stood_out = [v["distance"] for v in listed if v["why"].startswith("stands out:")]
    if not stood_out:
        stood_out = [v["distance"] for v in listed if v["kept"]]
    beyond = [v["distance"] for v in listed if not v["kept"] and stood_out and v["distance"] >= max(stood_out)]
    if not stood_out or not beyond:
        return None
    return (max(stood_out) + min(beyond)) / 2
