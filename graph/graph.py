"""The whole turn, in one place.

START ─┬─► prefetch ──────┐
       ├─► load_identity ─┼─► gap_filter ─► budget ─► assemble ─► llm ─┬───────────────────────────────────┬─► save ─► archive ─► END
       └─► load_working ──┘                                            │ tool calls                        │
                                                                       └─► tools ─► synthesize ─┬──────────┤
                                                                             ungrounded numbers └─► correct ┘

At most three model calls a turn: llm (offered the tools), synthesize (the reply from the
tool results, made without tools, so no loop), correct (one grounding correction, if needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, create_model

from graph.checkpoint import served_services
from nodes.context import Context
from nodes.state import FAN_OUT, TurnInput, TurnState
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
from nodes.services import Services
from nodes.synthesize import synthesize
from nodes.tools import tools

def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    builder = StateGraph(TurnState, context_schema=Context, input_schema=TurnInput)
    builder.add_node("prefetch", prefetch)
    builder.add_node("load_identity", load_identity)
    builder.add_node("load_working", load_working)
    builder.add_node("gap_filter", gap_filter)
    builder.add_node("budget", budget)
    builder.add_node("assemble", assemble)
    builder.add_node("llm", llm)
    builder.add_node("tools", tools)
    builder.add_node("synthesize", synthesize)
    builder.add_node("correct", correct)
    builder.add_node("save", save)
    builder.add_node("archive", archive_turn)

    # One superstep: the L3 search overlaps the L0/L1/L2 loads. A superstep ends when all
    # its nodes have, so plain edges join them (gap_filter runs once, after all three);
    # a barrier edge would also work here, but LangGraph's server loses its state
    # across an interrupt, which breaks stepping a turn in Studio.
    for node in FAN_OUT:
        builder.add_edge(START, node)
        builder.add_edge(node, "gap_filter")
    builder.add_edge("gap_filter", "budget")
    builder.add_edge("budget", "assemble")
    builder.add_edge("assemble", "llm")
    builder.add_conditional_edges("llm", after_llm, ["tools", "save"])
    builder.add_edge("tools", "synthesize")
    builder.add_conditional_edges("synthesize", after_synthesize, ["correct", "save"])
    builder.add_edge("correct", "save")
    builder.add_edge("save", "archive")
    builder.add_edge("archive", END)
    compiled = builder.compile(checkpointer=checkpointer, name="goat")
    # As Pregel.copy() makes one (LangGraph's server copies the graph it serves).
    return TurnGraph(**{name: value for name, value in vars(compiled).items() if name != "__orig_class__"})


class TurnGraph(CompiledStateGraph):
    """The compiled turn. LangGraph lists a graph's context fields twice: as its context and
    again as the "configurable" settings of graphs older than the context; GOAT's knobs are
    the context's alone, so Studio shows each once."""

    def config_schema(self, *, include: Sequence[str] | None = None) -> type[BaseModel]:
        return create_model(self.get_name("Config"))


def after_llm(state: TurnState) -> Literal["tools", "save"]:
    return "tools" if state.get("tool_calls") else "save"


def after_synthesize(state: TurnState) -> Literal["correct", "save"]:
    return "correct" if state.get("ungrounded") else "save"


# What langgraph.json serves (Studio brings its own checkpointer); its runs get the server's
# services, made from the whole settings tree.
Services.serve_from(served_services)
graph = build_graph()
