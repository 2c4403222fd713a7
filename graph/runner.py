"""Runs turns through the compiled graph for the CLI and the bot (one place that knows how)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from dataclasses import replace
from typing import Any, Awaitable, Callable, cast

from langchain_core.exceptions import ModelError
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph

from graph.checkpoint import CheckpointedServices
from graph.graph import build_graph
from graph.observability.turn_log import TurnObserver
from graph.observability.why_report import LastTurn
from graph.settings import Settings
from memory.errors import ForgetUnfinished
from memory.facade import Forgotten
from nodes.context import Context, run_context
from nodes.services import ModelNotConfigured
from nodes.state import TurnInput, TurnState, check_input, turn_input
from nodes.toolkit.dsml import DsmlStreamFilter
from nodes.turn_writes import write_unanswered

log = logging.getLogger(__name__)


# Nodes whose model output is the reply the user reads, streamed as it is generated.
REPLY_NODES = frozenset({"llm", "synthesize"})
# A turn that died after its reply was produced resumes these; one that died earlier had
# not answered, so it is dropped (the user saw an error or nothing) rather than answered late.
RESUMABLE_NODES = frozenset({"save", "archive"})
SAVE_NODES = ["save"]  # where a turn's first run stops: its reply exists, nothing is saved yet


class ModelUnavailable(Exception):
    """A turn's model failed (see :func:`model_failed`) and the user's message was kept as a turn
    of its own, number ``kept_as``. Raised from the model's error."""

    def __init__(self, kept_as: int) -> None:
        super().__init__(f"the model failed; the message is kept as turn {kept_as}")
        self.kept_as = kept_as


def model_failed(error: BaseException) -> bool:
    """Whether a turn failed for its model: unreachable, timed out, refusing the request (LangChain
    classifies each provider's errors so), or none configured."""
    return isinstance(error, ModelError | ModelNotConfigured)


class TurnRunner:
    def __init__(self, services: CheckpointedServices) -> None:
        """Args:
            services: the process's, whose checkpointer the turns write with.
        """
        self.services = services
        self.observer = TurnObserver(services.settings)
        self._graph: CompiledStateGraph | None = None
        self._compiling = asyncio.Lock()
        # Inspection stops before the model: an interrupt needs a checkpointer; a
        # throw-away in-memory one is enough since nothing of it is resumed.
        self._inspect_graph = build_graph(checkpointer=InMemorySaver())

    @classmethod
    def from_settings(cls, settings: Settings) -> "TurnRunner":
        return cls(CheckpointedServices(settings))

    def context(self, overrides: dict[str, Any] | None = None) -> Context:
        """A run's context: these knobs by dotted name (``{"prefetch.timeout": 0.3}``)."""
        return run_context(overrides, self.services)

    def _checked_context(self, overrides: dict[str, Any] | None) -> Context:
        """The context of a turn whose input :meth:`run` or :meth:`inspect` checked."""
        return replace(self.context(overrides), input_checked=True)

    async def warm_up(self) -> None:
        """Ready every backend, the model and the graph before the first turn of a process
        that serves many. What start-up built (~200 000 objects: modules, the encoder, the
        compiled graphs) then lives as long as the process, so it is frozen out of the
        garbage collector: its full collections, one every ~100 turns, stop re-scanning it
        (measured: 103 ms -> 1.4 ms, each one a turn's stall)."""
        await self.services.memory.connect(warm=True)
        await self.graph()
        gc.collect()
        gc.freeze()

    async def graph(self) -> CompiledStateGraph:
        """The turn graph, checkpointed in Redis after every step (thread = chat), on the same
        Redis as L2 (a turn and its state fail together). Compiled on first use: the embedded
        Redis starts with the first connection."""
        async with self._compiling:  # chats' first turns arrive together: one graph
            if self._graph is None:
                self._graph = build_graph(checkpointer=await self.services.checkpointer())
        return self._graph

    async def run(self, chat_id: str, message: str, *, user_id: str | None = None, user_name: str | None = None,
                  now: float | None = None, overrides: dict[str, Any] | None = None,
                  on_token: Callable[[str], None] | None = None,
                  on_reply: Callable[[str], Awaitable[None]] | None = None,
                  message_ref: str | None = None, keep_unanswered: bool = False) -> TurnState:
        """One whole turn: prefetch … llm … save … archive. Returns the final state.

        ``on_token`` receives the reply's text chunk by chunk as the model produces it;
        ``on_reply`` the whole reply once it is final, before the turn is saved and archived.
        Turns of one chat run one at a time, in arrival order, also across processes; an
        earlier turn of the chat that died after its reply is completed first.

        ``message_ref`` names the message in its client (a Telegram message id): the turn is
        linked to it before the chat is let go, so an edit of the message, however soon, finds
        what it replaces (``ChatEntries.edit_message``). With ``keep_unanswered``, a turn whose model
        fails keeps the user's message as a turn of its own and raises :class:`ModelUnavailable`.
        ``user_name``: the speaker's display name, shown beside their lines where several people
        share the chat."""
        turn = turn_input(chat_id, message, user_id, now, user_name)
        check_input(turn)  # before the chat is held: a bad id cannot even name its lock
        # The chat is held first: whatever is awaited before could let a later turn overtake.
        arrived = time.perf_counter()
        async with self.services.memory.turn(turn["chat_id"], turn["message"], turn["user_id"]) as unfinished:
            chat_wait_ms = (time.perf_counter() - arrived) * 1000
            graph = await self.graph()
            if unfinished:
                await self._finish_unfinished(graph, turn["chat_id"])
            try:
                # The graph consumes the turn's user and time as it ends (nodes/archive_turn.py).
                final: TurnState = {**await self._stream(graph, turn, overrides, on_token, on_reply), **turn}
            except Exception as exc:
                # It stays marked in flight: the next turn decides from its checkpoint.
                self.observer.record_failure(turn, exc, (time.perf_counter() - arrived) * 1000, chat_wait_ms)
                if keep_unanswered and model_failed(exc):
                    kept = await self._keep_unanswered(turn, message_ref)
                    raise ModelUnavailable(kept) from exc
                raise
            if message_ref is not None:
                await self.services.memory.entries.link_message(turn["chat_id"], message_ref, final)
        self.observer.record(final, (time.perf_counter() - arrived) * 1000, chat_wait_ms)
        return final

    async def _keep_unanswered(self, turn: TurnInput, message_ref: str | None) -> int:
        """The user's message of a turn its model could not answer, kept as a turn of its own
        (``nodes/turn_writes.py``, as the save and archive nodes write a turn) and linked to its
        client's message. Returns its number."""
        memory = self.services.memory
        kept = await write_unanswered(memory, turn)
        if message_ref is not None:
            await memory.entries.link_message(turn["chat_id"], message_ref, kept)
        return kept["turn"]

    async def recover(self, chats: list[str] | None = None) -> list[str]:
        """Complete the turns that died between reply and archive (of these chats, or of every
        chat, and then the forgets a backend failure interrupted), and have what an earlier
        process left in the L3 outbox written (call at start-up). Returns the chats that were
        looked at."""
        graph = await self.graph()
        unfinished = (await self.services.memory.connect()).unfinished_chats
        start_up = chats is None
        chats = unfinished if chats is None else [chat for chat in chats if chat in unfinished]
        for chat_id in chats:
            async with self.services.memory.turn(chat_id):
                await self._finish_unfinished(graph, chat_id)
        if start_up:  # and the forgets a backend failure interrupted
            for user_id in await self.services.memory.admin.unfinished_forgets():
                try:
                    await self.forget_user(user_id)
                except ForgetUnfinished as exc:
                    log.warning("%s", exc)
        return chats

    async def _finish_unfinished(self, graph: CompiledStateGraph, chat_id: str) -> None:
        config = _thread(chat_id)
        snapshot = await graph.aget_state(config)
        if snapshot.next and set(snapshot.next) <= RESUMABLE_NODES and snapshot.values.get("reply"):
            log.info("completing turn %s of chat %s from its checkpoint (%s)",
                     snapshot.values.get("turn"), chat_id, ", ".join(snapshot.next))
            await graph.ainvoke(None, config, context=self.context(), durability="sync")

    async def _stream(self, graph: CompiledStateGraph, turn: dict[str, Any],
                      overrides: dict[str, Any] | None, on_token: Callable[[str], None] | None,
                      on_reply: Callable[[str], Awaitable[None]] | None = None) -> TurnState:
        final: dict[str, Any] = {}
        # The thread's state carries the previous turn's bookkeeping; this turn's comes
        # from the updates of the nodes that ran now.
        latency: dict[str, float] = {}
        degraded: dict[str, str] = {}
        # Markup some models write for tool calls (DSML) is never shown, only executed.
        visible: dict[str, DsmlStreamFilter] = {}
        config, context = _thread(turn["chat_id"]), self._checked_context(overrides)
        # Two runs, checkpointed as each stops: up to the reply (written before save runs, so a
        # crash cannot lose it), then save and archive. The steps before the reply need no
        # checkpoint of their own (a turn that dies there is dropped, see RESUMABLE_NODES),
        # and leaving them out spares ~8 Redis round trips a turn. The chat is held, so the
        # second run resumes from the reply's checkpoint as written, not read back from Redis.
        with graph.checkpointer.resuming(turn["chat_id"]):
            for run_input, stop_before in ((turn, SAVE_NODES), (None, None)):
                async for mode, payload in graph.astream(
                    run_input, config, context=context,
                    # Token streaming hooks every node's callbacks: only when someone reads the tokens.
                    stream_mode=["messages", "updates", "values"] if on_token is not None else ["updates", "values"],
                    interrupt_before=stop_before, durability="exit",
                ):
                    if mode == "messages":
                        chunk, metadata = payload
                        node = metadata.get("langgraph_node")
                        if node in REPLY_NODES and chunk.text:
                            if text := visible.setdefault(node, DsmlStreamFilter()).feed(chunk.text):
                                on_token(text)
                    elif mode == "updates":
                        for node, update in payload.items():
                            if node in visible and (text := visible.pop(node).flush()):
                                on_token(text)
                            if isinstance(update, dict):
                                latency.update(update.get("latency_ms") or {})
                                degraded.update(update.get("degraded") or {})
                    else:
                        final = payload
                if stop_before and on_reply is not None and final.get("reply"):  # the reply, before save and archive
                    await on_reply(final["reply"])
        # LangGraph hands the state's values over untyped: they are the graph's TurnState.
        return cast(TurnState, {**final, "latency_ms": latency, "degraded": degraded})

    async def last_state(self, chat_id: str) -> TurnState:
        """The state of the chat's last turn as checkpointed ({} before its first)."""
        return cast(TurnState, dict((await (await self.graph()).aget_state(_thread(chat_id))).values))

    async def last_turn(self, chat_id: str) -> LastTurn:
        """The chat's last turn, as checkpointed (an earlier process's too): what every face's
        /why explains."""
        state = await self.last_state(chat_id)
        # The turn gives its time up as it ends (nodes/archive_turn.py); L2 keeps it.
        saved = (await self.services.memory.working(chat_id, 1)).messages if state.get("turn") else []
        return LastTurn(state, saved[-1].get("timestamp") if saved else None)

    async def forget_user(self, user_id: str) -> Forgotten:
        """Everything of the user out of memory, the graph threads of the chats they were in (a
        thread's checkpoints hold their turns' state), and their lines of the turn log; in one
        step with respect to turns: their chats are held meanwhile (see ``MemoryAdmin.forgetting``).

        Raises:
            ForgetUnfinished: a backend failed half-way; calling this again finishes the forget.
        """
        memory, graph = self.services.memory, await self.graph()
        try:
            async with memory.admin.forgetting(user_id) as chats:
                for chat_id, unfinished in chats:
                    if unfinished:  # replied to but not saved: saved first, then judged as every turn
                        await self._finish_unfinished(graph, chat_id)
                forgotten = await memory.admin.forget_user(user_id)
                for chat_id in [*forgotten.chats, *forgotten.shared]:
                    await graph.checkpointer.adelete_thread(chat_id)
                self.observer.log.drop_user(user_id)  # the turn log names the user on each of their turns
        except Exception as exc:
            raise ForgetUnfinished(user_id, exc) from exc
        return forgotten

    async def inspect(self, chat_id: str, message: str, *, user_id: str | None = None, user_name: str | None = None,
                      now: float | None = None, overrides: dict[str, Any] | None = None) -> TurnState:
        """The turn up to, not including, the model: what memory would inject. Writes nothing."""
        config = {"configurable": {"thread_id": f"inspect-{uuid.uuid4().hex}"}}
        turn = turn_input(chat_id, message, user_id, now, user_name)
        check_input(turn)  # before prefetch, which runs beside load_working, reads the chat
        await self._inspect_graph.ainvoke(
            turn,
            config=config,
            context=self._checked_context(overrides),
            interrupt_before=["llm"],
        )
        state = await self._inspect_graph.aget_state(config)
        await self._inspect_graph.checkpointer.adelete_thread(config["configurable"]["thread_id"])
        return cast(TurnState, dict(state.values))

    async def aclose(self) -> None:
        self._graph = None  # its checkpointer is the services', closed with them
        await self.services.aclose()

    async def __aenter__(self) -> "TurnRunner":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _thread(chat_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": chat_id}}
