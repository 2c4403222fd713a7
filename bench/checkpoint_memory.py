"""What one chat's checkpoints cost after many turns, in Redis and in time, with and without retention.

A small StateGraph shaped like GOAT's turn (three loads in one superstep, then gap_filter,
budget, assemble, llm, save, archive) writes state of TurnState's sizes: a persona head of
~1.5 KB, 20 working messages, 3 × 15 recalls, a prompt of several KB, a reply. Every turn's
input overwrites the channels, as in the real graph. Turns run as the bot runs them (streamed
on the async API, durability "sync"), each followed by the same turn of the graph compiled
without checkpointer: what checkpointing adds to a turn is their difference. The chat's keys
are measured with ``MEMORY USAGE … SAMPLES 0`` (exact) and against the server's
``used_memory``, then deleted.

    .venv/bin/python -m bench.checkpoint_memory [--turns 1000] [--keep-turns 2|all]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

import redis
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from bench.report import distribution
from graph.checkpoint import DEFAULT_KEEP_TURNS, RedisCheckpointSaver
from memory.stores import EmbeddedRedis

FAN_OUT = ("prefetch", "load_identity", "load_working")
PIPELINE = ("gap_filter", "budget", "assemble", "llm", "save", "archive")
MECHANISMS = ("thematic", "temporal", "specific_key")
RECALLS_PER_MECHANISM = 15
WORKING_MESSAGES = 20
INJECTED_RECALLS = 5
_WORDS = "the a memory chat turn yesterday plan river coffee train budget project meeting Paris idea".split()


def merge(left: dict | None, right: dict | None) -> dict:
    return {**(left or {}), **(right or {})}


class BenchState(TypedDict, total=False):
    chat_id: str
    message: str
    now: float
    identity: str
    facts: dict[str, str]
    turn: int
    working: list[dict[str, Any]]
    recalls: dict[str, list[dict[str, Any]]]
    prefetch: dict[str, Any]
    l3_candidates: list[dict[str, Any]]
    aits: dict[str, float]
    split: dict[str, int]
    prompt: list[dict[str, Any]]
    l3: list[dict[str, Any]]
    tokens: dict[str, int]
    reply: str
    archive_id: str
    latency_ms: Annotated[dict[str, float], merge]
    degraded: Annotated[dict[str, str], merge]


def prose(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(_WORDS))
    return " ".join(words)


def _rng(state: BenchState, node: str) -> random.Random:
    return random.Random(f"{state['message']}/{node}")


def _bookkeeping(node: str, rng: random.Random) -> dict[str, Any]:
    return {"latency_ms": {node: round(rng.uniform(0.1, 40.0), 3)}, "degraded": {node: ""}}


def prefetch(state: BenchState) -> dict[str, Any]:
    rng = _rng(state, "prefetch")
    recalls = {
        mechanism: [
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128))),
                "content": prose(rng, 300),
                "distance": rng.random(),
                "timestamp": state["now"] - rng.uniform(0, 1e7),
                "mechanism": mechanism,
                "metadata": {"chat_id": state["chat_id"], "turn": rng.randrange(1, 1000), "role": "turn"},
            }
            for _ in range(RECALLS_PER_MECHANISM)
        ]
        for mechanism in MECHANISMS
    }
    outcome = {"fired": list(MECHANISMS), "succeeded": list(MECHANISMS), "found": RECALLS_PER_MECHANISM * 3}
    return {"recalls": recalls, "prefetch": outcome, **_bookkeeping("prefetch", rng)}


def load_identity(state: BenchState) -> dict[str, Any]:
    rng = _rng(state, "load_identity")
    facts = {f"fact_{i}": prose(rng, 40) for i in range(10)}
    return {"identity": prose(rng, 1500), "facts": facts, **_bookkeeping("load_identity", rng)}


def load_working(state: BenchState) -> dict[str, Any]:
    rng = _rng(state, "load_working")
    working = [
        {"role": ("user", "assistant")[i % 2], "content": prose(rng, 200), "timestamp": state["now"] - i * 60}
        for i in range(WORKING_MESSAGES)
    ]
    return {"turn": state.get("turn", 0) + 1, "working": working, **_bookkeeping("load_working", rng)}


def gap_filter(state: BenchState) -> dict[str, Any]:
    rng = _rng(state, "gap_filter")
    merged = [recall for found in state["recalls"].values() for recall in found[:4]]
    candidates = [{**recall, "blended_score": rng.random()} for recall in merged]
    return {"l3_candidates": candidates, **_bookkeeping("gap_filter", rng)}


def budget(state: BenchState) -> dict[str, Any]:
    rng = _rng(state, "budget")
    aits = {"confidence": rng.random(), "complexity": rng.random(), "budget": 6000.0}
    return {"aits": aits, "split": {"l0_l1": 900, "l2": 2600, "l3": 2500}, **_bookkeeping("budget", rng)}


def assemble(state: BenchState) -> dict[str, Any]:
    rng = _rng(state, "assemble")
    injected = state["l3_candidates"][:INJECTED_RECALLS]
    system = "\n\n".join([state["identity"], *(recall["content"] for recall in injected)])
    prompt = [
        {"role": "system", "content": system},
        *state["working"],
        {"role": "user", "content": state["message"]},
    ]
    tokens = {"l0_l1": 420, "l2": 1100, "l3": 380}
    return {"prompt": prompt, "l3": injected, "tokens": tokens, **_bookkeeping("assemble", rng)}


def llm(state: BenchState) -> dict[str, Any]:
    rng = _rng(state, "llm")
    return {"reply": prose(rng, 600), **_bookkeeping("llm", rng)}


def save(state: BenchState) -> dict[str, Any]:
    return _bookkeeping("save", _rng(state, "save"))


def archive(state: BenchState) -> dict[str, Any]:
    rng = _rng(state, "archive")
    return {"archive_id": f"{state['chat_id']}:{state['turn']}", **_bookkeeping("archive", rng)}


def build_graph(saver: RedisCheckpointSaver | None) -> CompiledStateGraph:
    builder = StateGraph(BenchState)
    for node in (prefetch, load_identity, load_working, gap_filter, budget, assemble, llm, save, archive):
        builder.add_node(node.__name__, node)
    for name in FAN_OUT:
        builder.add_edge(START, name)
        builder.add_edge(name, PIPELINE[0])
    for before, after in zip(PIPELINE, PIPELINE[1:]):
        builder.add_edge(before, after)
    builder.add_edge(PIPELINE[-1], END)
    return builder.compile(checkpointer=saver)


async def run_turn(graph: CompiledStateGraph, chat_id: str, turn: int) -> float:
    """One turn, streamed as graph/runner.py streams it; its milliseconds."""
    turn_input = {"chat_id": chat_id, "message": f"message {turn}: " + prose(random.Random(turn), 200),
                  "now": 1.7e9 + turn * 60}  # fmt: skip
    # Without a checkpointer there is nothing to be durable (LangGraph refuses the option).
    durability: dict[str, Any] = {"durability": "sync"} if graph.checkpointer else {}
    started = time.perf_counter()
    async for _ in graph.astream(turn_input, {"configurable": {"thread_id": chat_id}},
                                 stream_mode=["messages", "updates", "values"], **durability):  # fmt: skip
        pass
    return 1000 * (time.perf_counter() - started)


async def measure(redis_url: str, turns: int = 1000, keep_turns: int | None = DEFAULT_KEEP_TURNS) -> dict[str, Any]:
    """Run ``turns`` turns of one chat, each next to the same turn without checkpointer, and
    measure what the chat's checkpoint keys hold in Redis."""
    prefix = f"bench:ckpt:{uuid.uuid4().hex[:8]}"  # never touches anyone else's keys
    chat_id = "bench-chat"
    config = {"configurable": {"thread_id": chat_id}}
    unsaved = build_graph(None)
    async with RedisCheckpointSaver.from_url(redis_url, prefix=prefix, keep_turns=keep_turns) as saver:
        graph = build_graph(saver)
        with redis.Redis.from_url(redis_url) as client:
            used_before = client.info("memory")["used_memory"]
            started = time.perf_counter()
            checkpointed_ms, added_ms = [], []
            for turn in range(1, turns + 1):
                checkpointed_ms.append(await run_turn(graph, chat_id, turn))
                added_ms.append(checkpointed_ms[-1] - await run_turn(unsaved, chat_id, turn))
            elapsed = time.perf_counter() - started
            keys = list(client.scan_iter(match=saver.key_pattern(chat_id), count=1000))
            key_bytes = sum(client.memory_usage(key, samples=0) or 0 for key in keys)
            used_after = client.info("memory")["used_memory"]
        checkpoints = len([tup async for tup in saver.alist(config)])
        last_turn = (await graph.aget_state(config)).values["message"].split(":")[0]
        await saver.adelete_thread(chat_id)
    return {
        "turns": turns,
        "keep_turns": keep_turns,
        "last_turn_in_state": last_turn,
        "checkpoints_kept": checkpoints,
        "keys": len(keys),
        "memory_usage_bytes": key_bytes,
        "used_memory_delta_bytes": used_after - used_before,
        "seconds": round(elapsed, 2),
        "ms_per_turn": distribution(checkpointed_ms),
        "ms_added_per_turn": distribution(added_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--keep-turns", default=str(DEFAULT_KEEP_TURNS), help="a number, or 'all' (no retention)")
    parser.add_argument("--redis-url", help="default: an embedded redis-server in a temporary folder")
    args = parser.parse_args()
    keep_turns = None if args.keep_turns == "all" else int(args.keep_turns)
    if args.redis_url:
        print(json.dumps(asyncio.run(measure(args.redis_url, args.turns, keep_turns)), indent=2))
        return
    with tempfile.TemporaryDirectory() as folder, EmbeddedRedis(Path(folder)) as server:
        print(json.dumps(asyncio.run(measure(server.url, args.turns, keep_turns)), indent=2))


if __name__ == "__main__":
    main()
