"""The statistics of turn lines: nearest-rank latency percentiles per node, and what
`goat stats` (and the bot's /stats) make of a turn log's lines."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from memory.turns import LayerTokens

TOTAL = "total"  # the turn's wall time, reported beside the nodes
LAYERS = tuple(LayerTokens.__annotations__)  # the prompt's layers, as a turn's line names them


# ---- percentiles -------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was really observed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def latency_summary(samples: Mapping[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    """{node: {p50, p95, max, n}} for each node with samples, in the given order."""
    return {
        node: {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95), "max": max(values), "n": len(values)}
        for node, values in samples.items()
        if values
    }


def latency_samples(lines: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Per node (in order of first appearance), then the turns' wall time under ``total``."""
    samples: dict[str, list[float]] = {}
    totals: list[float] = []
    for line in lines:
        for node, ms in (line.get("latency_ms") or {}).items():
            samples.setdefault(node, []).append(ms)
        if line.get("wall_ms") is not None:
            totals.append(line["wall_ms"])
    return {**samples, TOTAL: totals}


# ---- `goat stats` --------------------------------------------------------------------------


def summarize(lines: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What `goat stats` prints, from turn lines (oldest first)."""
    hits = sum(1 for line in lines if (line.get("cache") or {}).get("hit") is True)
    misses = sum(1 for line in lines if (line.get("cache") or {}).get("hit") is False)
    prefetch = [line.get("prefetch") or {} for line in lines]
    tokens = [line.get("tokens") or {} for line in lines]

    def mechanisms(field: str) -> dict[str, int]:
        """Turns per mechanism named in a list field (or, for ``failed``, a dict's keys)."""
        return dict(Counter(name for outcome in prefetch for name in outcome.get(field) or []))

    def counted(field: str) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for outcome in prefetch:
            counts.update(outcome.get(field) or {})
        return dict(counts)

    def p50(values: list[float]) -> float | None:
        return percentile(values, 0.5) if values else None

    return {
        "turns": len(lines),
        "from": lines[0].get("timestamp") if lines else None,
        "to": lines[-1].get("timestamp") if lines else None,
        "latency_ms": latency_summary(latency_samples(lines)),
        "cache": {"hits": hits, "misses": misses, "hit_rate": hits / (hits + misses) if hits + misses else None},
        "prefetch": {
            "fired": mechanisms("fired"),
            "succeeded": mechanisms("succeeded"),
            "timed_out": mechanisms("timed_out"),
            "failed": mechanisms("failed"),
            "found": counted("found"),
            "injected_by_mechanism": counted("injected_by_mechanism"),
            "per_turn_p50": {
                field: p50([o[field] for o in prefetch if isinstance(o.get(field), int)])
                for field in ("filtered", "injected")
            },
        },
        "degraded": dict(Counter(node for line in lines for node in line.get("degraded") or {})),
        "tokens_p50": {layer: p50([t[layer] for t in tokens if isinstance(t.get(layer), int)]) for layer in LAYERS},
    }


def render_stats(summary: Mapping[str, Any], source: Path | str) -> str:
    """The human form of `goat stats`; ``source`` names where the turns were read (a path, or a
    name for readers who must not see the server's paths)."""
    if not summary["turns"]:
        return f"no turns recorded yet in {source} — talk to GOAT (`goat chat` or the bot) first"

    def counts(values: Mapping[str, int]) -> str:
        return " · ".join(f"{k} {v}" for k, v in values.items()) or "none"

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    lines = [
        f"last {summary['turns']} turn(s), {summary['from']} … {summary['to']} ({source})",
        f"  {'latency ms':<16}{'p50':>10}{'p95':>10}{'max':>10}",
    ]
    for node, stats in summary["latency_ms"].items():
        lines.append(f"  {node:<16}{stats['p50']:>10.1f}{stats['p95']:>10.1f}{stats['max']:>10.1f}")
    cache, prefetch, tokens = summary["cache"], summary["prefetch"], summary["tokens_p50"]
    rate = "-" if cache["hit_rate"] is None else f"{cache['hit_rate']:.0%}"
    per_turn = prefetch["per_turn_p50"]
    lines += [
        f"  cache: {cache['hits']} hit(s), {cache['misses']} miss(es), hit rate {rate}",
        f"  prefetch fired: {counts(prefetch['fired'])}",
        f"  prefetch succeeded: {counts(prefetch['succeeded'])}; timed out: {counts(prefetch['timed_out'])};"
        f" failed: {counts(prefetch['failed'])}",
        f"  results found: {counts(prefetch['found'])}; injected: {counts(prefetch['injected_by_mechanism'])}",
        f"  per turn p50: kept by the gap filter {number(per_turn['filtered'])},"
        f" injected {number(per_turn['injected'])}",
        f"  degraded: {counts(summary['degraded'])}",
        f"  tokens p50: L0+L1 {number(tokens['l0_l1'])} · L2 {number(tokens['l2'])} · L3 {number(tokens['l3'])}",
    ]
    return "\n".join(lines)
