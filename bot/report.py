"""The tables `goat` prints: a turn's memory report (`goat inspect`, `goat demo`, `/why` in
`goat chat`) and the check lines of `goat doctor`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graph.observability.why_report import TurnReport
from memory.credentials import without_credentials

CHECK_INDENT = 7  # the width of "[FAIL] ", so a check's text and its fix line up


def render_report(report: TurnReport) -> str:
    """The human table of `goat inspect`, `goat demo` and `/why` in `goat chat`."""
    from memory.prompt import format_recall_line, one_line

    prefetch: Mapping[str, Any] = report.get("prefetch") or {}  # a RecallOutcome, when the turn ran it
    split, tokens = report.get("split") or {}, report.get("tokens") or {}
    cache = prefetch.get("cache")
    found = ", ".join(f"{k} {v}" for k, v in (prefetch.get("found") or {}).items()) or "nothing"
    lines = [
        f"» {report['message']}",
        f"  chat {report['chat_id']} · turn {report['turn']} · budget {report['budget']} "
        f"(confidence {report['confidence']:.2f}, complexity {report['complexity']:.2f})",
        f"  budget split: L0+L1 {split.get('l0_l1')} · L2 {split.get('l2')} · L3 {split.get('l3')} tokens;"
        f" used: L0+L1 {tokens.get('l0_l1')} · L2 {tokens.get('l2')} · L3 {tokens.get('l3')}",
        f"  prefetch: fired {', '.join(prefetch.get('fired') or []) or 'nothing'} · found {found}"
        f" · cache {'hit' if cache and cache.get('hit') else 'miss'} · waited {prefetch.get('waited_ms', 0):.0f} ms"
        + "".join(f" · {phrase}" for phrase in report.get("read") or [])
        + (f" · judged by meaning first: {prefetch['meaning_first']}" if prefetch.get("meaning_first") else "")
        + (" · asks for the newest: what stands out, newest first" if prefetch.get("latest_first") else ""),
        f"  gap filter kept {report.get('kept', 0)}; injected {len(report['l3'])}:",
    ]
    for entry in report["l3"]:
        # As the model sees it, its speaker named as in a chat of several people.
        named = {"metadata": {"name": entry["name"]}} if entry.get("name") else {}
        when, _, text = format_recall_line({**entry, **named}, {} if named else None).partition("] ")
        lines.append(
            f"    {when}] {entry['mechanism']:<12} d={entry['distance']:.3f} "
            f"score={entry['blended_score']:.3f}  {text[:110]}{'…' if len(text) > 110 else ''}"
        )
        if entry.get("turn"):
            lines.append(f"      excerpt of: {one_line(entry['turn'])}")
    for node, problem in (report.get("degraded") or {}).items():
        lines.append(f"  degraded: {node}: {problem}")
    latency = report.get("latency_ms") or {}
    lines.append("  latency ms: " + " · ".join(f"{k} {v:.1f}" for k, v in latency.items()))
    if report.get("reply"):
        lines.append(f"  answer: {report['reply']}")
    return "\n".join(lines)



def render_check(status: str, text: str, fix: str | None = None) -> str:
    """One line of `goat doctor`, then how to fix it when a fix is given; the URLs it names
    (a backend's, the model's) without their credentials."""
    text, fix = without_credentials(text), fix and without_credentials(fix)
    line = f"[{status}]".ljust(CHECK_INDENT) + text
    return f"{line}\n{' ' * CHECK_INDENT}fix: {fix}" if fix else line
