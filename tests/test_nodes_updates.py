"""Each node returns a typed update: the fields it writes, typed as the state's.

A real turn (real Redis, Chroma and MiniLM; the model the loopback fake) runs through every
node of the graph, and what each node returned is held to its declared update type.
"""

from __future__ import annotations

from typing import Any, get_origin, get_type_hints

import pytest
from bench.support.fakes import FakeOpenAI
from typing_extensions import NotRequired

from graph.graph import build_graph
from nodes.archive_turn import archive_turn
from nodes.assemble import assemble
from nodes.budget import budget
from nodes.correct import correct
from nodes.gap_filter import gap_filter
from nodes.llm import llm
from nodes.load_identity import load_identity
from nodes.load_working import load_working
from nodes.prefetch import prefetch
from nodes.save import save
from nodes.state import LATER_FIELDS, ClearedTurn, TurnInput, TurnState, turn_input
from nodes.synthesize import synthesize
from nodes.tools import tools
from test_graph import NOW, make_runner, with_model

GRAPH = build_graph()
NODES = {"prefetch": prefetch, "load_identity": load_identity, "load_working": load_working, "gap_filter": gap_filter,
         "budget": budget, "assemble": assemble, "llm": llm, "tools": tools, "synthesize": synthesize,
         "correct": correct, "save": save, "archive": archive_turn}
UPDATES = {name: get_type_hints(node)["return"] for name, node in NODES.items()}
PER_NODE = {"latency_ms", "degraded"}  # per-node dicts, whose entries may be None (dropped)


def test_every_node_of_the_graph_declares_an_update_of_the_states_fields():
    assert set(NODES) == set(GRAPH.nodes) - {"__start__"}
    state = get_type_hints(TurnState)
    for name, update in UPDATES.items():
        for field, hint in get_type_hints(update).items():
            # A field written as the state types it, or cleared (None).
            assert field in PER_NODE or hint in (state[field], type(None)), (name, field, hint)


def test_the_cleared_turn_names_the_fields_it_clears():
    assert set(get_type_hints(ClearedTurn)) == set(LATER_FIELDS) | PER_NODE


async def node_returns(graph, turn: TurnInput, context) -> dict[str, dict[str, Any]]:
    """What each node returned: the output of the run that LangGraph names after the node."""
    return {event["name"]: event["data"]["output"]
            async for event in graph.astream_events(turn, context=context, version="v2")
            if event["event"] == "on_chain_end" and event["name"] == event["metadata"].get("langgraph_node")}


@pytest.mark.parametrize("correction", ["made", "failed"])
async def test_on_a_real_turn_each_node_returns_what_its_update_type_declares(settings, embeddings, correction):
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            # Tools, then a reply with a number no tool gave: the turn goes through every node.
            fake.reply_tool_calls([{"name": "list_facts", "arguments": {}}])
            fake.reply("Your flat is on floor 17.")
            if correction == "made":
                fake.reply("Your flat is on a high floor.")
            else:
                fake.fail(400, "context too long")
            turn = turn_input("updates", "Where do I live?", "alice", NOW.timestamp())
            returned = await node_returns(GRAPH, turn, runner.context())
        finally:
            await runner.aclose()
    assert set(returned) == set(NODES)
    for name, update in returned.items():
        fields = get_type_hints(UPDATES[name], include_extras=True)
        # Not __required_keys__: under postponed annotations, Python 3.11 counts every key required.
        required = {field for field, hint in fields.items() if get_origin(hint) is not NotRequired}
        assert required <= set(update) <= set(fields), name
    assert ("reply" in returned["correct"]) == (correction == "made")
