"""What a turn saw, as the reports show it: the chat's last turn that every face's /why explains
(and the MCP server diagnoses), what its recall did by mechanism, and the stable
`goat inspect --json` shape of a turn's state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from memory.turns import LayerTokens, iso_time, notes_reported, notes_said
from nodes.state import TurnState


@dataclass(frozen=True)
class LastTurn:
    """A chat's last turn: what memory injected for it and why, the tools it called."""

    state: TurnState  # as checkpointed; {} before the chat's first turn
    time: float | None  # when its message was said

    @property
    def answered(self) -> bool:
        """False when its model failed, or it was cancelled, before the reply was whole."""
        return bool(self.state.get("reply"))

    def diagnosis(self) -> dict[str, Any]:
        """Everything it saw, JSON-able: the mechanisms that fired, every candidate and why it
        was injected, kept or dropped, the budget, the prompt's size, latency per step, the
        tools called, anything that failed."""
        state = self.state
        if not state.get("turn"):
            return {"turn": None, "note": "no turn of this chat has run through GOAT's graph yet"}
        prefetch: Mapping[str, Any] = state.get("prefetch") or {}  # a RecallOutcome, when the turn ran it
        injected = {r["id"] for r in state.get("l3") or []}
        candidates = [
            {**verdict, "injected": verdict["id"] in injected,
             **({"why": verdict["why"] + "; did not fit the L3 share of the prompt"}
                if verdict["kept"] and verdict["id"] not in injected else {})}
            for verdict in state.get("verdicts") or []
        ]
        prompt = state.get("prompt") or []
        return {
            "turn": state["turn"],
            "time": None if self.time is None else iso_time(self.time),
            "answered": self.answered,
            "mechanisms": mechanisms(prefetch),
            "background": prefetch.get("background"),
            "candidates": candidates,
            "budget": {"aits": state.get("aits"), "split": state.get("split"), "tokens_used": state.get("tokens")},
            "prompt": {"messages": len(prompt), "chars": sum(len(m["content"]) for m in prompt),
                       "system_chars": len(prompt[0]["content"]) if prompt else 0},
            "tools_called": [r["name"] for r in state.get("tool_results") or []],
            "model_calls": state.get("model_calls"),
            "latency_ms": state.get("latency_ms"),
            "degraded": {node: problem for node, problem in (state.get("degraded") or {}).items() if problem},
        }


def mechanisms(prefetch: Mapping[str, Any]) -> dict[str, Any]:
    """What a turn's recall did (its ``RecallOutcome``), by mechanism: fired, succeeded, timed
    out, failed, found; what each read of the message, by its own note, as the turn log keeps it
    (the period searched, how many keys: never the message's words, which a forget erases); and
    why the message was judged by meaning first, if it was."""
    return {**{key: prefetch.get(key) for key in ("fired", "succeeded", "timed_out", "failed", "found")},
            **notes_reported(prefetch, for_the_log=True),
            **{key: prefetch.get(key) for key in ("meaning_first", "latest_first")}}


def reported_outcome(prefetch: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A turn's ``RecallOutcome`` as `goat inspect --json` shows it: what each mechanism read
    (its note) among the outcome's own fields."""
    if prefetch is None:
        return None
    return {**{key: value for key, value in prefetch.items() if key != "notes"}, **notes_reported(prefetch)}


class ReportedEntry(TypedDict):
    """An injected L3 entry as a turn's report shows it: its metadata left out."""

    id: str
    content: str
    distance: float
    blended_score: float | None
    timestamp: float
    mechanism: str
    excerpt: bool
    """Whether ``content`` is an excerpt of the turn (its sentences that bear on the message)."""
    turn: NotRequired[str]
    """The whole turn an excerpt comes from (`goat inspect --whole-turns`)."""
    name: NotRequired[str]
    """Its speaker's display name (a note's, its writer's), when one was given."""


class TurnReport(TypedDict):
    """What a turn's memory did, as `goat inspect --json` prints it (a stable shape) and every
    face's memory report renders it (``bot/report.py``). A key the turn did not reach is None."""

    chat_id: str | None
    message: str | None
    turn: int | None
    budget: float | None
    """The turn's token budget (aits)."""
    confidence: float | None
    complexity: float | None
    split: LayerTokens | None
    """The budget's token shares: l0_l1, l2, l3."""
    kept: int
    """How many entries the gap filter kept."""
    l3: list[ReportedEntry]
    """What was injected, best first."""
    tokens: LayerTokens | None
    """The tokens of l0_l1, l2 and l3 actually used."""
    latency_ms: dict[str, float] | None
    prefetch: dict[str, Any] | None
    """How the recall went (``RecallOutcome``), what each mechanism read among its fields."""
    read: list[str]
    """What the mechanisms read of the message (a period, keys), as a report's line says it."""
    degraded: dict[str, str]
    """Per node, what failed (only nodes that failed)."""
    reply: NotRequired[str]
    """Once the model answered (not in `goat inspect`, which stops before it)."""


def turn_report(state: TurnState) -> TurnReport:
    """The stable `goat inspect --json` shape, from a turn's state."""
    aits = state.get("aits") or {}
    report: TurnReport = {
        "chat_id": state.get("chat_id"),
        "message": state.get("message"),
        "turn": state.get("turn"),
        "budget": aits.get("budget"),
        "confidence": aits.get("confidence"),
        "complexity": aits.get("complexity"),
        "split": state.get("split"),
        "kept": len(state.get("l3_candidates") or []),
        "l3": [
            {
                "id": r["id"],
                "content": r["content"],
                "distance": r["distance"],
                "blended_score": r.get("blended_score"),
                "timestamp": r["timestamp"],
                "mechanism": r["mechanism"],
                "excerpt": bool(r.get("excerpt")),
                **({"name": name} if (name := (r.get("metadata") or {}).get("name")) else {}),
            }
            for r in state.get("l3") or []
        ],
        "tokens": state.get("tokens"),
        "latency_ms": state.get("latency_ms"),
        "prefetch": reported_outcome(state.get("prefetch")),
        "read": notes_said(state.get("prefetch") or {}),
        "degraded": {k: v for k, v in (state.get("degraded") or {}).items() if v},
    }
    if state.get("reply"):
        report["reply"] = state["reply"]
    return report
