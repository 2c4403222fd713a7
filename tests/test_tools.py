"""The tool flow: memory tools, plugins, DSML, grounding, evidence lines.

Real Redis, real Chroma, real MiniLM; the model is the loopback fake OpenAI server, so
every model call of a turn is a request it records. Turns run both ways: the graph
invoked plainly (non-streaming requests) and through the runner, which streams.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import pytest

from memory.facade import measurement_hooks
from bench.support.fakes import FakeOpenAI
from graph.settings import Settings, load_settings
from nodes.toolkit.dsml import DsmlStreamFilter, parse_dsml
from graph.graph import build_graph
from bot import commands
from bot.commands import Asker
from graph.server.store import GoatStore
from nodes.toolkit.grounding import ungrounded_numbers
from nodes.toolkit.plugins import PluginRegistry
from nodes.services import Services
from nodes.state import ToolResult, turn_input
from nodes.toolkit.flow import FALLBACK_REPLY, evidence_line, turn_tools
from memory.stores.curated import CURATED_TAG
from memory.errors import FactsFull
from memory.retrieval.finding.recall import RecallQuery
from memory.turns import Exchange
from memory.prompt.blocks import FACTS_HEADER, MEMORY_TOOL_GUIDANCE, facts_block
from memory.prompt.tokens import count_tokens
from memory.retrieval.explicit_search import with_every_word
from nodes.toolkit.memory_tools import MEMORY_TOOL_NAMES, MemoryToolbox
from test_graph import NOW, make_runner, with_model

PLAIN_GRAPH = build_graph()
DAY = 86_400.0


@pytest.fixture
def fake():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, fake: FakeOpenAI) -> Settings:
    return with_model(Settings(data_dir=tmp_path, redis={"url": redis_url}), fake)


@pytest.fixture
def plugins_dir(settings: Settings) -> Path:
    folder = settings.data_dir / "plugins"  # the default folder
    folder.mkdir()
    return folder


@pytest.fixture
async def runner(settings: Settings, embeddings):  # noqa: F811
    runner = make_runner(settings, embeddings)
    await runner.services.memory.connect(warm=True)
    yield runner
    await runner.aclose()


@pytest.fixture(params=["invoke", "stream"])
def streaming(request) -> bool:
    return request.param == "stream"


async def run_turn(runner, message: str, *, streaming: bool = False, chat_id: str = "chat-a",
                   user_id: str = "alice", overrides: dict | None = None) -> dict:
    """A whole turn: the plain graph (one non-streaming request per model call) or the runner
    (which streams the graph, so the client streams every model call)."""
    if streaming:
        return await runner.run(chat_id, message, user_id=user_id, now=NOW.timestamp(), overrides=overrides,
                                on_token=lambda _: None)
    turn = turn_input(chat_id, message, user_id, NOW.timestamp())
    return await PLAIN_GRAPH.ainvoke(turn, context=runner.context(overrides))


def system_of(request: dict) -> str:
    [system] = [m["content"] for m in request["messages"] if m["role"] == "system"]
    return system


async def saved_reply(runner, chat_id: str = "chat-a") -> str:
    _, working, _ = await runner.services.memory.working(chat_id, 100)
    return working[-1]["content"]


def write_plugin(folder: Path, name: str, source: str, mtime_ns: int | None = None) -> Path:
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    if mtime_ns is not None:  # a new version is told by its time stamp, which may not tick between writes
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


DICE_PLUGIN = '''
from langchain_core.tools import tool

@tool
def roll_dice(sides: int) -> str:
    """Roll one die with this many sides."""
    return f"rolled a {sides} on a {sides}-sided die"

def tools():
    return [roll_dice]
'''

FAILING_PLUGIN = '''
from langchain_core.tools import tool

@tool
def explode() -> str:
    """Always fails."""
    raise RuntimeError("disk on fire")

def tools():
    return [explode]
'''


# ---- what the model is offered ---------------------------------------------------------


async def test_memory_tools_are_offered_with_their_documented_arguments_and_guidance(runner, fake):
    fake.reply("Hello!")
    state = await run_turn(runner, "hi")
    [request] = fake.requests
    offered = {t["function"]["name"]: t["function"]["parameters"]["properties"] for t in request["tools"]}
    assert list(offered) == list(MEMORY_TOOL_NAMES)
    assert set(offered["search_memory"]) == {"query", "after", "before"}
    assert set(offered["store_memory"]) == {"content", "tags"}
    assert set(offered["promote_memory"]) == {"key", "value"}
    assert set(offered["forget_fact"]) == {"key"} and offered["list_facts"] == {}
    assert "chat_id" not in json.dumps(request["tools"]) and "user_id" not in json.dumps(request["tools"])
    system = system_of(request)
    assert all(line in system for line in MEMORY_TOOL_GUIDANCE.values())
    assert state["reply"] == "Hello!" and state["model_calls"] == 1 and state["tool_results"] == []
    guidance = system[system.index("[Tools]"):]  # a new chat: no L3 block before it
    assert state["tokens"]["l0_l1"] == count_tokens(state["identity"]) + count_tokens(guidance)


async def test_with_tools_disabled_nothing_is_offered(settings, embeddings, fake):  # noqa: F811
    disabled = settings.model_copy(update={"tools": settings.tools.model_copy(update={"enabled": False})})
    runner = make_runner(disabled, embeddings)
    try:
        fake.reply("Hello!")
        await run_turn(runner, "hi")
        assert "tools" not in fake.last_request and "[Tools]" not in system_of(fake.last_request)
    finally:
        await runner.aclose()


# ---- the flow -------------------------------------------------------------------------


async def test_a_promoted_fact_is_in_every_later_prompt(runner, fake, streaming):
    fake.reply_tool_calls([{"name": "promote_memory", "arguments": {"key": "dog", "value": "Rex, a beagle"}}])
    fake.reply("I will remember Rex.")
    first = await run_turn(runner, "My dog is Rex, a beagle. Remember that.", streaming=streaming)
    fake.reply("Rex, your beagle.")
    await run_turn(runner, "What is my dog called?", streaming=streaming)
    fake.reply("Still Rex.")
    await run_turn(runner, "And again?", streaming=streaming)

    assert first["reply"] == "I will remember Rex." and first["model_calls"] == 2
    requests = fake.requests
    assert len(requests) == 4 and all(bool(r.get("stream")) == streaming for r in requests)
    assert "tools" not in requests[1]  # call 2 is made without tools
    assert '"saved": {"dog": "Rex, a beagle"}' in system_of(requests[1])
    fact_line = f"{FACTS_HEADER}\n- dog: Rex, a beagle"
    assert fact_line not in system_of(requests[0])
    assert all(fact_line in system_of(r) for r in requests[2:])
    assert await runner.services.memory.scope("alice", "alice").facts() == {"dog": "Rex, a beagle"}


async def test_tools_asked_for_again_are_ignored_and_a_turn_makes_at_most_three_calls(runner, fake, streaming):
    # Whatever it is sent, this model asks for a tool, and says a number no tool gave.
    fake.responder = lambda request: {"tool_calls": [{"name": "list_facts", "arguments": {}}],
                                      "content": "Let me check 4242 again."}
    state = await run_turn(runner, "What do you know about me?", streaming=streaming)
    assert len(fake.requests) == 3 and state["model_calls"] == 3
    assert all("tools" not in r for r in fake.requests[1:])
    assert [r["name"] for r in state["tool_results"]] == ["list_facts"]  # one round of tools only
    assert state["reply"] == "Let me check 4242 again."

    fake.reset()
    fake.responder = lambda request: [{"name": "list_facts", "arguments": {}}]  # tool calls, no text at all
    state = await run_turn(runner, "And now?", streaming=streaming)
    assert len(fake.requests) == 2 and state["reply"] == FALLBACK_REPLY


async def test_an_ungrounded_number_gets_exactly_one_correction_and_a_grounded_one_none(runner, fake):
    await runner.services.memory.scope("alice", "alice").remember("flat", "number 42")
    fake.reply_tool_calls([{"name": "list_facts", "arguments": {}}])
    fake.reply("Your flat is number 42, on floor 17.")
    fake.reply("Your flat is number 42.")
    state = await run_turn(runner, "Where do I live?")
    assert len(fake.requests) == 3 and state["ungrounded"] == ["17"]
    correction = system_of(fake.requests[2])
    assert "The draft states 17" in correction and "Your flat is number 42, on floor 17." in correction
    assert "tools" not in fake.requests[2]
    assert state["reply"] == "Your flat is number 42." and state["degraded"]["correct"] == ""

    fake.reset()
    fake.reply_tool_calls([{"name": "list_facts", "arguments": {}}])
    fake.reply("Your flat is number 42.")
    state = await run_turn(runner, "Where do I live, again?", chat_id="chat-b")
    assert len(fake.requests) == 2 and state["ungrounded"] == []
    assert state["reply"] == "Your flat is number 42."


async def test_a_failing_correction_call_leaves_the_earlier_reply(runner, fake):
    fake.reply_tool_calls([{"name": "list_facts", "arguments": {}}])
    fake.reply("You live on floor 17.")
    fake.fail(400, "context too long")  # not retried by the client
    state = await run_turn(runner, "Where do I live?")
    assert len(fake.requests) == 3
    assert state["reply"] == "You live on floor 17."
    assert "correction call failed" in state["degraded"]["correct"] and "context too long" in state["degraded"]["correct"]
    assert (await saved_reply(runner)).endswith("\n\nYou live on floor 17.")


DSML_PROMOTE = """Let me note that.
<｜DSML｜function_calls>
<｜DSML｜invoke name="promote_memory">
<｜DSML｜parameter name="key" string="true">city</｜DSML｜parameter>
<｜DSML｜parameter name="value" string="true">Brasov</｜DSML｜parameter>
</｜DSML｜invoke>
</｜DSML｜function_calls>"""


async def test_dsml_markup_is_executed_and_never_reaches_the_reply(runner, fake, streaming):
    fake.reply(DSML_PROMOTE)
    fake.reply('Noted: you live in Brasov.<|DSML|function_calls><|DSML|invoke name="list_facts">'
               "</|DSML|invoke></|DSML|function_calls>")
    state = await run_turn(runner, "I live in Brasov.", streaming=streaming)
    assert await runner.services.memory.scope("alice", "alice").facts() == {"city": "Brasov"}
    assert len(fake.requests) == 2  # the markup in call 2 asked for a tool: ignored
    assert state["reply"] == "Noted: you live in Brasov."
    assert [(c["id"], c["name"], c["args"]) for c in state["tool_calls"]] == [
        ("dsml_1", "promote_memory", {"key": "city", "value": "Brasov"})]
    saved = await saved_reply(runner)
    assert saved.startswith('called promote_memory(key="city", value="Brasov") → {"saved"') and "DSML" not in saved


async def test_a_tool_that_raises_hands_the_model_a_json_error_and_the_turn_completes(runner, fake, plugins_dir):
    write_plugin(plugins_dir, "failing", FAILING_PLUGIN)
    fake.reply_tool_calls([{"name": "explode", "arguments": {}}, {"name": "no_such_tool", "arguments": {}},
                           {"name": "list_facts", "arguments": "{not json"}])
    fake.reply("Sorry, that tool is broken.")
    state = await run_turn(runner, "Blow it up.")
    failed, unknown, garbled = state["tool_results"]
    assert json.loads(failed["output"]) == {"error": "RuntimeError: disk on fire"} and not failed["ok"]
    assert "no tool named 'no_such_tool'" in json.loads(unknown["output"])["error"]
    assert json.loads(garbled["output"]) == {"error": "the arguments are not valid JSON: '{not json'"}
    assert '{"error": "RuntimeError: disk on fire"}' in system_of(fake.requests[1])
    assert state["reply"] == "Sorry, that tool is broken." and state["archive_id"]
    assert (await saved_reply(runner)).startswith('called explode() → {"error": "RuntimeError: disk on fire"}')


async def test_evidence_lines_lead_the_saved_reply_and_later_turns_start_clean(runner, fake, plugins_dir, streaming):
    write_plugin(plugins_dir, "pages", '''
from langchain_core.tools import tool

@tool
def fetch_page(url: str) -> str:
    """Fetch a web page."""
    return "<html>" + "x" * 50_000

@tool
def summary_of(topic: str) -> str:
    """A long paragraph about a topic."""
    return (topic + " is interesting. ") * 30

def tools():
    return [fetch_page, summary_of]
''')
    fake.reply_tool_calls([{"name": "fetch_page", "arguments": {"url": "https://example.org"}},
                           {"name": "summary_of", "arguments": {"topic": "otters"}}])
    fake.reply("Otters hold hands while sleeping.")
    await run_turn(runner, "Tell me about otters.", streaming=streaming)
    lines = (await saved_reply(runner)).split("\n")
    assert lines[0] == 'called fetch_page(url="https://example.org") → [50006 chars]'
    assert lines[1].startswith('called summary_of(topic="otters") → otters is interesting. otters')
    assert lines[1].endswith("…") and len(lines[1]) < 200
    assert lines[2:] == ["", "Otters hold hands while sleeping."]
    assert await measurement_hooks(runner.services.memory).settle() == 0
    store = await runner.services.memory._backends.l3.episodic()
    [archived] = store.get_by_ids(["chat-a"], ["chat-a:turn_0001"])
    assert archived["content"].endswith("\nassistant: Otters hold hands while sleeping.")

    fake.reply("You're welcome.")
    state = await run_turn(runner, "Thanks!", streaming=streaming)
    assert state["tool_results"] == [] and await saved_reply(runner) == "You're welcome."


async def test_tool_calls_past_the_limit_are_refused_and_a_stuck_tool_costs_only_its_call(
        settings, embeddings, fake, plugins_dir):  # noqa: F811
    limited = settings.model_copy(update={"tools": settings.tools.model_copy(update={"timeout": 0.3, "max_calls": 2})})
    runner = make_runner(limited, embeddings)
    write_plugin(plugins_dir, "stuck", '''
import threading
from langchain_core.tools import tool

RELEASE = threading.Event()

@tool
def stuck() -> str:
    """Never answers in time."""
    RELEASE.wait(30)
    return "late"

def tools():
    return [stuck]
''')
    try:
        fake.reply_tool_calls([{"name": "stuck", "arguments": {}}, {"name": "list_facts", "arguments": {}},
                               {"name": "list_facts", "arguments": {}}])
        fake.reply("The lookup timed out.")
        state = await run_turn(runner, "Try the stuck tool.")
        stuck, listed, refused = state["tool_results"]
        assert json.loads(stuck["output"]) == {"error": "no result within 0.3 s"}
        assert listed["ok"] and json.loads(refused["output"]) == {"error": "not run: at most 2 tool calls per message"}
        assert state["reply"] == "The lookup timed out."
    finally:
        for plugin_tool in runner.services.plugins.tools():  # let the abandoned worker thread finish
            plugin_tool.func.__globals__["RELEASE"].set()
        await runner.aclose()


# ---- the memory tools ------------------------------------------------------------------


def toolbox(runner, chat_id: str = "chat-a", user_id: str = "alice", settings: Settings | None = None) -> MemoryToolbox:
    return MemoryToolbox(runner.services.memory.scope(chat_id, user_id, now=NOW.timestamp(), settings=settings))


async def archive_days(runner, chat_id: str, user_id: str, turns: list[tuple[float, str, str]]) -> None:
    exchanges = [Exchange(chat_id, user_id, n, NOW.timestamp() - days * DAY, user, assistant)
                 for n, (days, user, assistant) in enumerate(turns, 1)]
    await runner.services.memory._archiver.write(exchanges, now=NOW.timestamp())


GARDEN = [
    (12, "I planted three San Marzano tomato seedlings on the balcony.", "Give them a deep pot."),
    (11, "The tomato seedlings got their first flowers.", "Pinch the suckers below them."),
    (9, "A tomato seedling wilted in the heat.", "Water in the morning, shade at noon."),
    (5, "I harvested the first ripe tomatoes today.", "Congratulations on the harvest!"),
    (2, "I made sauce from the balcony tomatoes.", "San Marzano is made for sauce."),
]


# Other topics of the same chat: against them, the tomatoes stand out.
ERRANDS = [
    (8, "My bike chain keeps slipping on the hills.", "Check the derailleur and the chain wear."),
    (7, "Which documents do I need to renew my passport?", "The old passport, a photo and the form."),
    (4, "Can you suggest a quick vegetarian lunch?", "A chickpea salad with lemon and herbs."),
    (3, "My laptop fan is loud when I compile.", "Clean the vents and check the fan curve."),
    (1, "I need a birthday gift for my sister.", "A book by an author she likes, or a concert ticket."),
]


async def test_search_memory_keeps_to_the_dates_given(runner):
    await archive_days(runner, "chat-a", "alice", GARDEN)
    found = await toolbox(runner).search("tomato seedlings", after="2026-11-10", before="2026-11-12")
    assert found["results"] and all(line.startswith(("[2026-11-10", "[2026-11-11", "[2026-11-12"))
                                    for line in found["results"])
    assert any("first flowers" in line for line in found["results"])
    assert not any("harvested" in line or "sauce" in line for line in found["results"])
    since = await toolbox(runner).search("tomatoes", after="2026-11-16T00:00:00+00:00")
    assert since["results"] and all("harvest" in line or "sauce" in line for line in since["results"])
    with pytest.raises(ValueError, match=r"after='last tuesday' is not an ISO-8601 date"):
        await toolbox(runner).search("tomatoes", after="last tuesday")
    with pytest.raises(ValueError, match="is later than before"):
        await toolbox(runner).search("tomatoes", after="2026-11-12", before="2026-11-10")


async def test_search_memory_never_returns_another_chats_memories(runner, fake):
    await archive_days(runner, "chat-a", "alice", GARDEN)
    await archive_days(runner, "chat-b", "alice", [(3, "My bike chain keeps slipping.", "Check the derailleur.")])
    # The model names the other chat in its arguments: ids come from the turn, never from there.
    fake.reply_tool_calls([{"name": "search_memory",
                            "arguments": {"query": "tomato seedlings balcony", "after": "2026-11-01",
                                          "chat_id": "chat-a", "user_id": "alice"}}])
    fake.reply("I find nothing about tomatoes here.")
    state = await run_turn(runner, "What did I plant?", chat_id="chat-b")
    [result] = state["tool_results"]
    assert result["ok"] and "tomato" not in result["output"].lower()
    assert "bike chain" in result["output"]  # its own chat's memory, within the dates


async def test_search_memory_finds_what_stands_out_and_nothing_for_an_unrelated_query(runner):
    await archive_days(runner, "chat-a", "alice", GARDEN + ERRANDS)
    related = await toolbox(runner).search("How are my tomato seedlings doing?")
    assert related["results"] and all("tomato" in line.lower() for line in related["results"])
    unrelated = await toolbox(runner).search("What is the capital of Mongolia?")
    assert unrelated == {"results": [], "note": "nothing in memory stands out for this query"}


# A long reply about the dog: by meaning alone, a search for "Rex" or "frisbee" missed this turn.
REX_TURN = ("Our border collie Rex loves chasing the frisbee.",
            "That sounds like a lot of fun for both of you. Border collies are one of the most energetic and "
            "intelligent breeds, originally bred for herding sheep in the hills between Scotland and England. "
            "They thrive on having a job to do, so games like fetch, agility courses, herding balls and puzzle "
            "feeders keep them mentally and physically satisfied. Make sure he gets plenty of water on hot days, "
            "watch his paws on rough ground, and rotate toys so he does not get bored. Regular vet checkups, "
            "brushing his double coat weekly, and teaching new tricks will keep him healthy and happy for years.")


async def test_a_search_finds_every_turn_holding_its_words_however_common_and_says_which(runner):
    # A small chat: "Rex" is in two of its three turns, far more than lexical_max_df_share of them.
    await archive_days(runner, "chat-a", "alice", [(12, *REX_TURN),
                                                   (6, "I need to renew the car insurance.", "Compare quotes first."),
                                                   (2, "Rex dug up the tulip bulbs again.", "Cover the bed with wire.")])
    assert runner.services.settings.retrieval.lexical_max_df_share < 2 / 3
    found = (await toolbox(runner).search("Rex"))["results"]
    assert {line for line in found if line.endswith(" [words: rex]")} == {
        line for line in found if "Rex loves" in line or "Rex dug" in line} and len(found) >= 2
    within = (await toolbox(runner).search("rex frisbees", before="2026-11-15"))["results"]
    assert REX_TURN[0] in within[0] and within[0].endswith(" [words: rex, frisbees]")
    assert not any("tulip" in line for line in within)


def test_a_result_holding_the_words_goes_before_every_farther_one():
    holding = [{"id": "rex", "distance": 1.0}]
    chosen = [{"id": "closer", "distance": 0.5}, {"id": "farther", "distance": 1.2}, {"id": "rex", "distance": 1.0}]
    assert [hit["id"] for hit in with_every_word(holding, chosen, 15)] == ["closer", "rex", "farther"]
    assert [hit["id"] for hit in with_every_word(holding, chosen[1:], 15)] == ["rex", "farther"]
    assert [hit["id"] for hit in with_every_word(holding, chosen, 1)] == ["rex"]


async def test_the_memory_tools_are_built_once_and_act_for_the_turn_that_calls_them(runner):
    await archive_days(runner, "chat-a", "alice", GARDEN)
    await archive_days(runner, "chat-b", "bob", [(3, "My bike chain keeps slipping.", "Check the derailleur.")])
    offered = {"tools_offered": ["search_memory"]}
    search = turn_tools(runner.services.plugins, {**offered, "chat_id": "chat-a"})["search_memory"]
    assert turn_tools(runner.services.plugins, {**offered, "chat_id": "chat-b"})["search_memory"] is search
    question = {"query": "what happened lately", "after": "2026-11-01"}
    in_a, in_b = await asyncio.gather(search.ainvoke(question, toolbox(runner).run_config()),
                                      search.ainvoke(question, toolbox(runner, "chat-b", "bob").run_config()))
    assert "tomato" in in_a and "bike" not in in_a
    assert "bike" in in_b and "tomato" not in in_b
    with pytest.raises(RuntimeError, match="a memory tool acts for a turn"):
        await search.ainvoke(question)


async def test_promote_memory_is_refused_past_the_facts_limit(runner, fake):
    tools = toolbox(runner)
    with pytest.raises(FactsFull, match=r"refused: .* over its limit of 500"):
        await tools.promote("biography", "I was born in a small town by the sea. " * 60)
    assert await tools.facts() == {"facts": {}}
    added = 0
    with pytest.raises(FactsFull):
        while True:
            await tools.promote(f"fact_{added}", f"a moderately long remembered detail number {added}")
            added += 1
    facts = (await tools.facts())["facts"]
    assert len(facts) == added > 5 and count_tokens(facts_block(facts)) <= 500
    # The limit is a run-time knob, read per turn; the model gets the refusal as an error.
    fake.reply_tool_calls([{"name": "promote_memory", "arguments": {"key": "bike", "value": "a red road bike"}}])
    fake.reply("I could not save that.")
    state = await run_turn(runner, "Remember my bike.", chat_id="chat-c", user_id="carol",
                           overrides={"budget.l1_facts_max_tokens": 5})
    assert "refused" in json.loads(state["tool_results"][0]["output"])["error"]
    assert await runner.services.memory.scope("carol", "carol").facts() == {}



async def test_a_fact_of_long_words_is_counted_by_what_it_sends_through_the_tool_and_the_store(runner):
    # WordPiece reads a word of over 100 characters as one [UNK]: counted so, a megabyte would
    # pass as a token and be sent in every later prompt.
    store = GoatStore(runner.services.memory, runner.services.settings.server)
    with pytest.raises(FactsFull, match=r"^refused: with this fact the known-facts block would take 125\d{3} tokens"):
        await store.aput(("users", "alice", "facts"), "huge", {"value": "x" * 1_000_000})
    with pytest.raises(FactsFull, match=r"would take 37\d{3} tokens, over its limit of 500"):
        await toolbox(runner).promote("huge", "x" * 300_000)
    assert await toolbox(runner).facts() == {"facts": {}}



async def test_a_fact_of_zero_width_characters_is_refused_as_a_blank_one_is(runner):
    store, said = GoatStore(runner.services.memory, runner.services.settings.server), Asker(runner, "chat-a", "alice")
    for blank in ("\u200b\u200b", "\u200d\ufeff \u2060"):
        assert await commands.remember(said, f"note={blank}") == f"fact value must be a non-empty string, got {blank!r}"
        with pytest.raises(ValueError, match="^fact value must be a non-empty string"):
            await store.aput(("users", "alice", "facts"), "note", {"value": blank})
        with pytest.raises(ValueError, match="^fact key must be a non-empty string"):
            await toolbox(runner).promote(blank, "a value")
    assert await toolbox(runner).facts() == {"facts": {}}


async def test_store_memory_writes_a_curated_entry_once_and_invalidates_cached_searches(runner):
    memory = runner.services.memory
    tools = toolbox(runner)
    question = RecallQuery("locker code", "chat-a", "alice", NOW.timestamp())
    assert (await memory.recall(question)).outcome["cache"]["hit"] is False
    assert (await memory.recall(question)).outcome["cache"]["hit"] is True

    first = await tools.store("The gym locker code is kept in the blue notebook.", ["gym", "codes, locker"])
    again = await tools.store("The gym locker code is kept in the blue notebook.  ", ["gym"])
    assert first == again and first["stored"].startswith("chat-a:memory_")
    store = await memory._backends.l3.episodic()
    [entry] = store.get_by_ids(["chat-a"], [first["stored"]])
    assert store.count("chat-a") == 1 and entry["content"] == "The gym locker code is kept in the blue notebook."
    assert entry["metadata"]["tags"] == f"{CURATED_TAG},gym" and entry["metadata"]["user_id"] == "alice"
    recalled = await memory.recall(question)
    assert recalled.outcome["cache"]["hit"] is False and [r["id"] for r in recalled.lists["thematic"]] == [first["stored"]]
    with pytest.raises(ValueError, match="content must be a non-empty string"):
        await tools.store("   ")


async def test_forget_fact_and_list_facts(runner):
    tools = toolbox(runner)
    await tools.promote("dog", "Rex")
    await tools.promote("city", "Brasov")
    assert await tools.facts() == {"facts": {"dog": "Rex", "city": "Brasov"}}
    assert await tools.forget("dog") == {"forgotten": "dog"}
    with pytest.raises(LookupError, match="no fact is saved under the key 'dog'"):
        await tools.forget("dog")
    assert await toolbox(runner, user_id="bob").facts() == {"facts": {}}  # L1 is per user
    assert await tools.facts() == {"facts": {"city": "Brasov"}}


# ---- plugins ---------------------------------------------------------------------------


async def test_a_plugin_tool_is_offered_with_its_guidance_and_runs(runner, fake, plugins_dir):
    write_plugin(plugins_dir, "dice", DICE_PLUGIN)
    fake.reply_tool_calls([{"name": "roll_dice", "arguments": {"sides": 20}}])
    fake.reply("You rolled a 20.")
    state = await run_turn(runner, "Roll a d20.")
    assert [t["function"]["name"] for t in fake.requests[0]["tools"]] == [*MEMORY_TOOL_NAMES, "roll_dice"]
    assert "- roll_dice: Roll one die with this many sides." in system_of(fake.requests[0])
    assert state["tool_results"][0]["output"] == "rolled a 20 on a 20-sided die"
    assert state["reply"] == "You rolled a 20." and state["ungrounded"] == []


async def test_a_reloaded_plugin_is_offered_with_its_new_schema(runner, fake, plugins_dir):
    write_plugin(plugins_dir, "dice", DICE_PLUGIN, mtime_ns=1_000_000_000)
    fake.reply("Ready.")
    await run_turn(runner, "Get the dice ready.")
    write_plugin(plugins_dir, "dice", DICE_PLUGIN.replace("sides", "faces"), mtime_ns=2_000_000_000)
    fake.reply("Ready again.")
    await run_turn(runner, "And now?")

    def dice_arguments(request: dict) -> set[str]:
        [schema] = [t["function"] for t in request["tools"] if t["function"]["name"] == "roll_dice"]
        return set(schema["parameters"]["properties"])

    assert [dice_arguments(request) for request in fake.requests] == [{"sides"}, {"faces"}]


def test_plugins_reload_when_a_file_changes_and_a_broken_version_keeps_the_last_good_tools(tmp_path, caplog):
    registry = PluginRegistry(tmp_path, reserved=MEMORY_TOOL_NAMES)
    assert registry.refresh() == []  # an empty folder, as a missing one, has no tools
    path = write_plugin(tmp_path, "dice", DICE_PLUGIN, mtime_ns=1_000_000_000)
    [first] = registry.refresh()
    assert first.name == "roll_dice"
    assert registry.refresh()[0] is first  # unchanged: not loaded again

    write_plugin(tmp_path, "dice", DICE_PLUGIN.replace("roll_dice", "roll_two_dice"), mtime_ns=2_000_000_000)
    assert [t.name for t in registry.refresh()] == ["roll_two_dice"]

    caplog.set_level(logging.WARNING, logger="nodes.toolkit.plugins")
    write_plugin(tmp_path, "dice", "def tools(:\n", mtime_ns=3_000_000_000)
    for _ in range(3):
        assert [t.name for t in registry.refresh()] == ["roll_two_dice"]
    [warning] = caplog.records
    assert str(path) in warning.getMessage() and "keeps its last good tools" in warning.getMessage()

    write_plugin(tmp_path, "dice", DICE_PLUGIN, mtime_ns=4_000_000_000)
    assert [t.name for t in registry.refresh()] == ["roll_dice"]
    path.unlink()
    assert registry.refresh() == [] and registry.tools() == []


def test_plugins_that_never_loaded_or_take_a_memory_tool_name_offer_nothing(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="nodes.toolkit.plugins")
    registry = PluginRegistry(tmp_path, reserved=MEMORY_TOOL_NAMES)
    write_plugin(tmp_path, "raises", "raise RuntimeError('import-time failure')\n")
    write_plugin(tmp_path, "not_tools", "def tools():\n    return ['not a tool']\n")
    write_plugin(tmp_path, "no_function", "x = 1\n")
    write_plugin(tmp_path, "exits", "import sys\nsys.exit(3)\n")
    write_plugin(tmp_path, "shadow", DICE_PLUGIN.replace("roll_dice", "list_facts"))
    write_plugin(tmp_path, "_helper", "raise RuntimeError('helpers are not plugins')\n")
    assert registry.refresh() == [] and registry.refresh() == []
    messages = sorted(record.getMessage() for record in caplog.records)
    assert len(messages) == 5  # each failure once, however many rescans
    assert any("import-time failure" in m and "offers no tools" in m for m in messages)
    assert any("must return a list of LangChain tools" in m for m in messages)
    assert any("has no tools() function" in m for m in messages)
    assert any("SystemExit" in m for m in messages)
    assert any("a tool named list_facts exists already" in m for m in messages)


async def test_the_plugins_folder_is_a_setting_with_a_default_under_the_data_folder(tmp_path):
    configured = Services(load_settings(environ={"GOAT_DATA_DIR": str(tmp_path),
                                                 "GOAT_TOOLS__PLUGINS_DIR": str(tmp_path / "mine")}))
    default = Services(Settings(data_dir=tmp_path))
    try:
        assert configured.plugins.folder == tmp_path / "mine"
        assert default.plugins.folder == tmp_path / "plugins"
    finally:
        await configured.aclose()
        await default.aclose()


async def test_the_plugins_folder_is_rescanned_once_per_turn(runner, fake, plugins_dir):
    class CountedRegistry(PluginRegistry):
        refreshes = 0

        def refresh(self):
            CountedRegistry.refreshes += 1
            return super().refresh()

    runner.services.plugins = CountedRegistry(plugins_dir, reserved=MEMORY_TOOL_NAMES)
    write_plugin(plugins_dir, "dice", DICE_PLUGIN)
    fake.reply_tool_calls([{"name": "roll_dice", "arguments": {"sides": 6}}])
    fake.reply("A six.")
    state = await run_turn(runner, "Roll a d6.")
    assert state["tool_results"][0]["ok"] and CountedRegistry.refreshes == 1


async def test_without_a_plugins_folder_the_rescan_wakes_no_thread_and_a_new_folder_is_read(
        tmp_path, monkeypatch):
    """The default has no plugins folder: a turn's rescan is one stat on the event loop, not a
    thread's work. A folder made while the process runs is read (in a thread) from the next turn."""
    import nodes.toolkit.flow as flow

    settings = Settings(data_dir=tmp_path)
    registry = PluginRegistry(tmp_path / "plugins", reserved=MEMORY_TOOL_NAMES)
    threaded: list[object] = []
    to_thread = asyncio.to_thread

    async def noted(fn, *args, **kwargs):
        threaded.append(fn)
        return await to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(flow.asyncio, "to_thread", noted)
    offered = await flow.tool_offer(registry, settings)
    assert [t.name for t in offered] == list(MEMORY_TOOL_NAMES) and threaded == []
    (tmp_path / "plugins").mkdir()
    write_plugin(tmp_path / "plugins", "dice", DICE_PLUGIN)
    offered = await flow.tool_offer(registry, settings)
    assert "roll_dice" in [t.name for t in offered] and threaded == [registry.refresh]


# ---- pure parts ------------------------------------------------------------------------


@pytest.mark.parametrize("markup, calls, visible", [
    (DSML_PROMOTE, [{"name": "promote_memory", "args": {"key": "city", "value": "Brasov"}}], "Let me note that."),
    # ASCII bars, the V4 block name, a JSON body, a second invoke left open at the end
    ('<|DSML|tool_calls>\n<|DSML|invoke name="a">{"x": 1}</|DSML|invoke>\n'
     '<|DSML|invoke name="b">\n<|DSML|parameter name="n" string="false">3</|DSML|parameter>',
     [{"name": "a", "args": {"x": 1}}, {"name": "b", "args": {"n": 3}}], ""),
    # a bare invoke between prose, a JSON list parameter
    ('Before. <｜DSML｜invoke name="solo"><｜DSML｜parameter name="k" string="false">[1, 2]</｜DSML｜parameter>'
     "</｜DSML｜invoke> After.", [{"name": "solo", "args": {"k": [1, 2]}}], "Before.  After."),
    # doubled bars with spaces, the block tag without its ">", a string that looks like JSON
    ('<｜｜DSML｜｜ calls\n<｜｜DSML｜｜ invoke name="read"><｜｜DSML｜｜ parameter name="n" string="true">42'
     "</｜｜DSML｜｜ parameter></｜｜DSML｜｜ invoke></｜｜DSML｜｜ calls>", [{"name": "read", "args": {"n": "42"}}], ""),
    ('<｜DSML｜function_calls><｜DSML｜invoke name="x">not json</｜DSML｜invoke></｜DSML｜function_calls>',
     [{"name": "x", "args": {}, "error": "the arguments are not a JSON object: 'not json'"}], ""),
    ("No markup <b>here</b>.", [], "No markup <b>here</b>."),
])
def test_dsml_parsing_is_tolerant(markup, calls, visible):
    assert parse_dsml(markup) == (visible, calls)


def test_streamed_text_stops_where_dsml_markup_starts():
    stream = DsmlStreamFilter()
    shown = [stream.feed(chunk) for chunk in ["Let me ", "check <", "b> then <", "｜DS", "ML｜function_calls>", "x"]]
    assert "".join(shown) + stream.flush() == "Let me check <b> then "
    stream = DsmlStreamFilter()
    assert stream.feed("a <") == "a " and stream.flush() == "<"


@pytest.mark.parametrize("reply, sources, ungrounded", [
    ("You have 42 facts.", ["42"], []),
    ("Floor 17, flat 42.", ['{"flat": "number 42"}'], ["17"]),
    ("It costs 1,234 lei or 1234.", ["price: 1234"], []),
    ("Version 3.14 of alpha-5675, 12th of 7 items, A320, 10km.", ["alpha-5675"], ["3.14"]),
    ("On 2026-03-12 you wrote 2 notes.", ['{"time": "2026-03-12 10:00"}'], []),
    ("It is 3.5 or 35.", ["3.50 and 350"], ["3.5", "35"]),
])
def test_grounding_finds_standalone_numbers_no_source_holds(reply, sources, ungrounded):
    assert ungrounded_numbers(reply, sources) == ungrounded


def test_evidence_lines_shorten_long_results_and_size_huge_ones():
    def result(output: str, **args) -> ToolResult:
        return ToolResult(id="1", name="fetch", args=args, output=output[:16_000], ok=True, chars=len(output))

    assert evidence_line(result('{"ok": true}', url="https://x.org")) == 'called fetch(url="https://x.org") → {"ok": true}'
    assert evidence_line(result("y" * 1_999)).endswith("y…") and len(evidence_line(result("y" * 1_999))) < 150
    assert evidence_line(result("z" * 2_000_000, q="a\nb")) == 'called fetch(q="a\\nb") → [2000000 chars]'
    assert evidence_line(result("line one\nline two")) == "called fetch() → line one line two"
