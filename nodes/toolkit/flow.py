"""The tool flow of a turn: the tools offered, running the calls, what the second
(synthesis) and third (correction) model calls read, and the evidence lines saved to L2.

Tool results reach calls 2 and 3 as a section of the system prompt, not as tool-role
messages: those calls are made without tools, and some providers refuse tool messages
in a request that declares no tools; DSML calls have no call ids to answer to either.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from memory.facade import Memory
from memory.prompt import one_line
from memory.turns import clean_text
from nodes.settings import NodeSettings
from nodes.state import Message, ToolCall, ToolResult, TurnState
from nodes.toolkit.dsml import parse_dsml
from nodes.toolkit.memory_tools import MEMORY_TOOLS, MemoryToolbox
from nodes.toolkit.plugins import PluginRegistry

log = logging.getLogger(__name__)

RESULTS_HEADER = "[Tool results for the user's last message]"
SYNTHESIS_INSTRUCTION = (
    "Answer the user's last message from the tool results above. State numbers and names only if they "
    "appear verbatim in the tool results; if the results do not hold what is needed, say so plainly. "
    "No more tools can be called for this message."
)
DRAFT_HEADER = "[Your draft answer]"
FALLBACK_REPLY = "I looked this up but could not put an answer together from what I found; please ask again."
MODEL_OUTPUT_CHARS = 16_000  # of one tool's output, what the model reads
EVIDENCE_PREVIEW_CHARS = 120  # of a result, in its evidence line
EVIDENCE_HUGE_CHARS = 2_000  # a result this long shows as "[N chars]"
EVIDENCE_ARG_CHARS = 60  # of each argument, in an evidence line

_MESSAGE_TYPES = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}

# Tool name -> (the tool object, its OpenAI schema). A plugin reloaded from a changed file is
# a new object under its name, so its schema is made afresh; the memory tools' never change.
_schemas: dict[str, tuple[BaseTool, dict[str, Any]]] = {}


def chat_messages(prompt: list[Message]) -> list[BaseMessage]:
    return [_MESSAGE_TYPES[m["role"]](content=m["content"]) for m in prompt]


# ---- what is offered ------------------------------------------------------------------


async def tool_offer(plugins: PluginRegistry, settings: NodeSettings) -> list[BaseTool]:
    """The tools offered this turn, memory tools first. Rescans the plugins folder: the budget
    node calls it, once per turn, and the state keeps the names and schemas it offered."""
    if not settings.tools.enabled:
        return []
    # Without a plugins folder (the default) there is nothing to read: no thread is woken.
    return [*MEMORY_TOOLS, *(await asyncio.to_thread(plugins.refresh) if plugins.has_folder() else plugins.refresh())]


def turn_tools(plugins: PluginRegistry, state: TurnState) -> dict[str, BaseTool]:
    """The tools offered this turn, by name, to run the model's calls: process-level objects,
    none built per turn."""
    offered = set(state.get("tools_offered") or ())
    if not offered:
        return {}
    return {t.name: t for t in [*MEMORY_TOOLS, *plugins.tools()] if t.name in offered}


def turn_toolbox(memory: Memory, settings: NodeSettings, state: TurnState) -> MemoryToolbox:
    """Whose memory the memory tools act on this turn: the turn's chat and user, never the model's say."""
    return MemoryToolbox(memory.scope(state["chat_id"], state["user_id"], now=state["now"], settings=settings))


def openai_schemas(tools: Iterable[BaseTool]) -> list[dict[str, Any]]:
    """The tools' OpenAI schemas, to bind to the model: each tool converted once, not every turn
    (converting builds its pydantic schema, milliseconds per tool)."""
    return [_openai_schema(tool) for tool in tools]


def _openai_schema(tool: BaseTool) -> dict[str, Any]:
    cached = _schemas.get(tool.name)
    if cached is None or cached[0] is not tool:
        cached = _schemas[tool.name] = (tool, convert_to_openai_tool(tool))
    return cached[1]


# ---- what the model asked for -----------------------------------------------------------


def read_answer(answer: AIMessage) -> tuple[str, list[ToolCall]]:
    """(the text the user may read, the tool calls requested): native ``tool_calls`` when
    there are any, else those written as DSML markup, which is stripped from the text either way.

    Lone surrogates (a broken provider's ``\\ud800`` escapes) become U+FFFD (a user's message
    holding them is refused): text that is not valid Unicode could be neither sent on nor stored."""
    text, dsml_calls = parse_dsml(clean_text(answer.text))
    calls = [ToolCall(id=c.get("id") or f"call_{n}", name=c["name"], args=c["args"])
             for n, c in enumerate(answer.tool_calls, 1)]
    calls += [ToolCall(id=c.get("id") or f"invalid_{n}", name=c.get("name") or "", args={},
                       error=unusable_arguments(c.get("args")))
              for n, c in enumerate(answer.invalid_tool_calls, 1)]
    if not calls:
        calls = [ToolCall(id=f"dsml_{n}", **c) for n, c in enumerate(dsml_calls, 1)]
    return text.strip(), [_readable(call) for call in calls]


def unusable_arguments(args: str | None) -> str:
    """Why a tool call's arguments (as the model wrote them) cannot be used."""
    try:
        parsed = json.loads(args or "")
    except RecursionError:
        return "the arguments are nested too deeply to read"
    except ValueError:
        parsed = None
    if parsed is not None and not isinstance(parsed, dict):
        return f"the arguments are not a JSON object but a {type(parsed).__name__}"
    return f"the arguments are not valid JSON: {clean_text(args or '')!r:.200}"


def _readable(call: ToolCall) -> ToolCall:
    """The call with valid Unicode in its name and arguments (lone surrogates as U+FFFD)."""
    try:  # one pass in C over the whole value, whatever its shape
        args = json.loads(clean_text(json.dumps(call["args"], ensure_ascii=False)))
    except RecursionError:
        return ToolCall(id=call["id"], name=clean_text(call["name"]), args={},
                        error="the arguments are nested too deeply to read")
    return ToolCall(**{**call, "name": clean_text(call["name"]), "args": args})


# ---- running the calls ------------------------------------------------------------------


async def run_tool_calls(
    tools: Mapping[str, BaseTool], calls: list[ToolCall], config: RunnableConfig, timeout: float, max_calls: int
) -> list[ToolResult]:
    """Each call's result, in order, one after another (a later call may depend on an
    earlier one's write). Every tool is invoked with ``config`` (the memory tools read their
    turn's toolbox from it). A call that fails yields a JSON error for the model, never raises."""
    results = [await run_tool_call(tools, call, config, timeout) for call in calls[:max_calls]]
    refused = f"not run: at most {max_calls} tool calls per message"
    return results + [_result(call, _error(refused), ok=False) for call in calls[max_calls:]]


async def run_tool_call(
    tools: Mapping[str, BaseTool], call: ToolCall, config: RunnableConfig, timeout: float
) -> ToolResult:
    if "error" in call:
        return _result(call, _error(call["error"]), ok=False)
    tool = tools.get(call["name"])
    if tool is None:
        return _result(call, _error(f"no tool named {call['name']!r}; the tools are: {', '.join(tools)}"), ok=False)
    try:
        output = await asyncio.wait_for(tool.ainvoke(call["args"], config), timeout)
    except TimeoutError:
        log.warning("tool %s gave no result within %s s", call["name"], timeout)
        return _result(call, _error(f"no result within {timeout:g} s"), ok=False)
    except Exception as exc:  # a failing tool is the model's to explain; the turn goes on
        log.warning("tool %s failed: %s", call["name"], type(exc).__name__)
        return _result(call, _error(f"{type(exc).__name__}: {exc}"), ok=False)
    return _result(call, output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, default=str),
                   ok=True)


def _result(call: ToolCall, output: str, ok: bool) -> ToolResult:
    shown = output if len(output) <= MODEL_OUTPUT_CHARS else (
        output[:MODEL_OUTPUT_CHARS] + f"… [cut: {len(output)} chars in all]"
    )
    return ToolResult(id=call["id"], name=call["name"], args=call["args"], output=shown, ok=ok, chars=len(output))


def _error(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)


# ---- calls 2 and 3 ------------------------------------------------------------------------


def synthesis_messages(prompt: list[Message], results: list[ToolResult]) -> list[BaseMessage]:
    """Call 2: the turn's prompt, its system message followed by the results and the instruction."""
    return _with_system_note(prompt, _results_block(results), SYNTHESIS_INSTRUCTION)


def correction_messages(
    prompt: list[Message], results: list[ToolResult], draft: str, numbers: list[str]
) -> list[BaseMessage]:
    """Call 3: as call 2, plus the draft and the numbers in it that no tool result holds."""
    correction = (
        f"The draft states {', '.join(numbers)}, which appear in none of the tool results. Write the answer "
        "again, stating only numbers that appear verbatim in the tool results; where they do not say, say so. "
        "Reply with the answer only."
    )
    return _with_system_note(prompt, _results_block(results), SYNTHESIS_INSTRUCTION,
                             f"{DRAFT_HEADER}\n{draft}", correction)


def grounding_sources(results: list[ToolResult]) -> list[str]:
    """What a reply's numbers may come from: each call as made (its own arguments) and its result."""
    return [f"{_call_text(result['name'], result['args'])}\n{result['output']}" for result in results]


def _with_system_note(prompt: list[Message], *notes: str) -> list[BaseMessage]:
    system, *rest = prompt
    if system["role"] != "system":
        raise ValueError("the prompt does not start with its system message")
    return chat_messages([{"role": "system", "content": "\n\n".join([system["content"], *notes])}, *rest])


def _results_block(results: list[ToolResult]) -> str:
    return "\n".join([RESULTS_HEADER, *(f"{_call_text(r['name'], r['args'])} → {r['output']}" for r in results)])


def _call_text(name: str, args: dict[str, Any], arg_chars: int | None = None) -> str:
    rendered = (f"{key}={_shortened(json.dumps(value, ensure_ascii=False), arg_chars)}" for key, value in args.items())
    return f"{name}({', '.join(rendered)})"


# ---- evidence in L2 -----------------------------------------------------------------------


def with_evidence(reply: str, results: list[ToolResult]) -> str:
    """The assistant message saved to L2: one line per tool call, then the reply."""
    return "\n".join([*map(evidence_line, results), "", reply]) if results else reply


def evidence_line(result: ToolResult) -> str:
    """``called name(args…) → result preview``, on one line (later prompts show it): long results
    shortened, huge ones as ``[N chars]``."""
    if result["chars"] >= EVIDENCE_HUGE_CHARS:
        preview = f"[{result['chars']} chars]"
    else:
        preview = _shortened(" ".join(result["output"].split()), EVIDENCE_PREVIEW_CHARS)
    return one_line(f"called {_call_text(result['name'], result['args'], EVIDENCE_ARG_CHARS)} → {preview}")


def _shortened(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"
