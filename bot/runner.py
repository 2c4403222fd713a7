"""Runs turns through the compiled graph for the CLI and the bot (one place that knows how)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from graph.context import Context
from graph.graph import build_graph
from graph.services import Services
from graph.settings import Settings
from graph.state import turn_input


class TurnRunner:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.graph = build_graph()
        # Inspection stops before the model: an interrupt needs a checkpointer; a
        # throw-away in-memory one is enough since nothing of it is resumed.
        self._inspect_graph = build_graph(checkpointer=InMemorySaver())
        # A chat's turns run one after another (its turn number and L2 order depend on it);
        # different chats run concurrently.
        self._chat_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> "TurnRunner":
        return cls(Services(settings))

    def context(self, overrides: dict[str, Any] | None = None) -> Context:
        return Context(overrides=overrides or {}, services=self.services)

    async def run(self, chat_id: str, message: str, *, user_id: str | None = None,
                  now: float | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """One whole turn: prefetch … llm … save … archive. Returns the final state."""
        turn = turn_input(chat_id, message, user_id, now)
        async with self._chat_locks[turn["chat_id"]]:
            return await self.graph.ainvoke(turn, context=self.context(overrides))

    async def inspect(self, chat_id: str, message: str, *, user_id: str | None = None,
                      now: float | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The turn up to, not including, the model: what memory would inject. Writes nothing."""
        config = {"configurable": {"thread_id": f"inspect-{uuid.uuid4().hex}"}}
        await self._inspect_graph.ainvoke(
            turn_input(chat_id, message, user_id, now),
            config=config,
            context=self.context(overrides),
            interrupt_before=["llm"],
        )
        state = await self._inspect_graph.aget_state(config)
        await self._inspect_graph.checkpointer.adelete_thread(config["configurable"]["thread_id"])
        return dict(state.values)

    async def aclose(self) -> None:
        await self.services.aclose()

    async def __aenter__(self) -> "TurnRunner":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def turn_report(state: dict[str, Any]) -> dict[str, Any]:
    """The stable `goat inspect --json` shape (SPEC §10), from a turn's state."""
    aits = state.get("aits") or {}
    return {
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
            }
            for r in state.get("l3") or []
        ],
        "tokens": state.get("tokens"),
        "latency_ms": state.get("latency_ms"),
        "prefetch": state.get("prefetch"),
        "degraded": {k: v for k, v in (state.get("degraded") or {}).items() if v},
        **({"reply": state["reply"]} if state.get("reply") else {}),
    }
