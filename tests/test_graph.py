"""The turn, end to end, on real Redis, real Chroma and real MiniLM embeddings.

The model is the only fake: a loopback server speaking the Chat Completions protocol.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from bench.support.fakes import FakeOpenAI

from graph.importing.importer import TranscriptError, import_transcript
from graph.checkpoint import CheckpointedServices
from graph.runner import TurnRunner
from graph.observability.why_report import turn_report
from graph.graph import build_graph, graph
from graph.settings import Settings
from nodes.services import ModelNotConfigured, Services
from memory.settings import SettingsError
from nodes.state import InvalidTurn, TurnConflict, check_input, turn_input
from memory.encoders.embeddings import LocalEmbeddings
from memory.stores.episodic import EpisodicStore
from memory.errors import BackendUnavailable
from memory.facade import Memory, measurement_hooks
from memory.turns import ARCHIVE_TAG, Exchange, archive_id
from memory.prompt.tokens import count_tokens

NOW = datetime(2026, 11, 21, 15, 0, tzinfo=timezone.utc)
PRE_LLM_NODES = {"prefetch", "load_identity", "load_working", "gap_filter", "budget", "assemble"}

# (days before NOW, user, assistant) — one chat's history over several sessions.
HISTORY = [
    (12, "I planted three San Marzano tomato seedlings on the balcony today.",
     "San Marzano is a great choice for sauce. Give them a deep pot and full sun."),
    (12, "Should I prune the suckers on the tomatoes?",
     "Yes, pinch the suckers below the first flower cluster to get bigger fruit."),
    (9, "The deployment of service alpha-5675 failed again with a timeout on the database migration.",
     "A migration timeout usually means a long lock. Run it in batches or raise the statement timeout."),
    (9, "We rolled alpha-5675 back to version 2.3.1 for now.",
     "Sensible. Keep 2.3.1 pinned until the migration is split."),
    (6, "My sister Clara is getting married in Porto in June.",
     "Congratulations to Clara! June in Porto is lovely."),
    (4, "I tried a mushroom risotto with porcini and it came out gluey.",
     "Stir less at the start and add the stock gradually; rinse nothing, the starch matters."),
    (1, "I refactored the billing module to use a queue for invoice emails.",
     "A queue decouples sending from billing; make the email job idempotent."),
    (1, "I also booked flights to Rome for the conference on the 12th.",
     "Nice. The conference venue is near Termini, so stay around there."),
    # everyday turns around them, as in a real chat
    (14, "Can you recommend a sci-fi movie for tonight?", "Try Arrival; it is thoughtful and not too long."),
    (14, "We watched Arrival, loved the linguistics angle.", "The heptapod writing is based on real linguistics ideas."),
    (13, "It has been raining all week here.", "Good weather for reading. Do you have a book going?"),
    (11, "I ran 8 kilometres this morning, my knee feels fine.", "Great, keep the long runs slow for a while."),
    (10, "My manager wants the quarterly report by Friday.", "Block two mornings for it and draft the charts first."),
    (8, "What is a good stretch after running?", "Calf and hamstring stretches, 30 seconds each, no bouncing."),
    (7, "I am thinking of learning Italian before the trip.", "Start with a daily 15-minute app session and podcasts."),
    (5, "Our team adopted a new code review checklist.", "Checklists help; keep it short so people actually use it."),
    (3, "I need a gift idea for my dad, he likes woodworking.", "A good Japanese pull saw or a set of chisels."),
    (2, "The office coffee machine broke again.", "Maybe time for a team French press."),
]


def history_jsonl(chat_id: str, user_id: str = "alice") -> str:
    lines = []
    for n, (days, user, assistant) in enumerate(HISTORY):
        when = NOW - timedelta(days=days, hours=2) + timedelta(minutes=5 * n)
        for offset, role, content in ((0, "user", user), (1, "assistant", assistant)):
            stamp = (when + timedelta(seconds=offset)).isoformat()
            lines.append(json.dumps({"chat_id": chat_id, "user_id": user_id, "role": role,
                                     "content": content, "timestamp": stamp}))
    return "\n".join(lines) + "\n"


def make_runner(settings: Settings, embeddings: LocalEmbeddings, **memory_parts) -> TurnRunner:
    return TurnRunner(CheckpointedServices(settings, Memory(settings, embeddings=embeddings, **memory_parts)))


@pytest.fixture
async def runner(settings: Settings, embeddings: LocalEmbeddings):
    runner = make_runner(settings, embeddings)
    await runner.services.memory.connect(warm=True)
    yield runner
    await runner.aclose()


async def load_history(runner: TurnRunner, tmp_path: Path, chat_id: str = "alice-chat") -> dict:
    path = tmp_path / f"{chat_id}.jsonl"
    path.write_text(history_jsonl(chat_id), encoding="utf-8")
    return await import_transcript(runner.services.memory, path)


async def inspect(runner: TurnRunner, chat_id: str, message: str, **kwargs) -> dict:
    return turn_report(await runner.inspect(chat_id, message, now=NOW.timestamp(), **kwargs))


# ---- the graph ---------------------------------------------------------------------


def test_topology_fans_out_from_start_and_runs_in_a_line_after_the_join_with_the_tool_detour():
    drawn = graph.get_graph()
    edges = {(e.source, e.target) for e in drawn.edges}
    fan_out = {"prefetch", "load_identity", "load_working"}
    assert {(t) for s, t in edges if s == "__start__"} == fan_out
    assert {s for s, t in edges if t == "gap_filter"} == fan_out
    chain = ["gap_filter", "budget", "assemble", "llm", "save", "archive", "__end__"]
    for source, target in zip(chain, chain[1:]):
        assert (source, target) in edges
    tool_flow = {("llm", "tools"), ("tools", "synthesize"), ("synthesize", "correct"),
                 ("synthesize", "save"), ("correct", "save")}
    assert tool_flow <= edges
    assert len(edges) == 3 + 3 + len(chain) - 1 + len(tool_flow)


def test_langgraph_json_names_the_compiled_graph():
    config = json.loads((Path(__file__).parents[1] / "langgraph.json").read_text())
    module_path, attribute = config["graphs"]["goat"].split(":")
    assert module_path == "./graph/graph.py" and attribute == "graph"
    assert set(graph.get_graph().nodes) >= PRE_LLM_NODES | {"llm", "save", "archive"}


# ---- import + inspect: the mechanisms ------------------------------------------------


async def test_question_about_the_past_injects_that_exchange(runner, tmp_path):
    stats = await load_history(runner, tmp_path)
    assert stats == {"messages": 36, "turns": 18, "imported": 18, "skipped": 0}
    report = await inspect(runner, "alice-chat", "Which tomato variety did I plant on the balcony?")
    injected = [entry["content"] for entry in report["l3"]]
    assert any("San Marzano" in text for text in injected)
    assert report["l3"][0]["content"].startswith("user: ")
    assert set(report["latency_ms"]) == PRE_LLM_NODES
    assert set(report["tokens"]) == {"l0_l1", "l2", "l3"} and report["tokens"]["l3"] > 0
    assert report["prefetch"]["fired"] == report["prefetch"]["succeeded"] == ["thematic", "lexical"]
    assert all(set(e) == {"id", "content", "distance", "blended_score", "timestamp", "mechanism", "excerpt"}
               for e in report["l3"])
    scores = [e["blended_score"] for e in report["l3"]]
    assert scores == sorted(scores, reverse=True)


async def test_greeting_injects_little_or_nothing(runner, tmp_path):
    await load_history(runner, tmp_path)
    report = await inspect(runner, "alice-chat", "hey, good morning!")
    assert report["tokens"]["l3"] <= 60


async def test_structural_key_is_found_by_exact_match(runner, tmp_path):
    await load_history(runner, tmp_path)
    report = await inspect(runner, "alice-chat", "status of alpha-5675?")
    exact = [e for e in report["l3"] if e["mechanism"] == "specific_key"]
    assert exact and all("alpha-5675" in e["content"] and e["distance"] == 0.0 for e in exact)
    assert len(exact) == 2
    assert report["prefetch"]["keys"] == ["alpha-5675"]


async def test_yesterday_fires_the_temporal_mechanism(runner, tmp_path):
    await load_history(runner, tmp_path)
    report = await inspect(runner, "alice-chat", "what did we discuss yesterday?")
    assert "temporal" in report["prefetch"]["fired"]
    start, end = report["prefetch"]["range"]
    assert start.startswith("2026-11-20T00:00") and end.startswith("2026-11-20T23:59")
    temporal = [e for e in report["l3"] if e["mechanism"] == "temporal"]
    assert {("billing" in e["content"]) or ("Rome" in e["content"]) for e in temporal} == {True}
    assert len(temporal) == 2


async def test_another_chat_sees_nothing_of_the_first(runner, tmp_path):
    await load_history(runner, tmp_path)
    for question in ("Which tomato variety did I plant?", "status of alpha-5675?",
                     "what did we discuss yesterday?"):
        report = await inspect(runner, "bob-chat", question, user_id="alice")
        assert report["l3"] == [] and report["tokens"]["l3"] == 0
        assert not any(report["prefetch"]["found"].values())


async def test_user_scope_widens_recall_to_the_users_other_chats(runner, tmp_path):
    await load_history(runner, tmp_path)
    report = await inspect(runner, "alice-other-chat", "status of alpha-5675?", user_id="alice",
                           overrides={"memory.scope": "user"})
    assert any("alpha-5675" in e["content"] for e in report["l3"])
    stranger = await inspect(runner, "mallory-chat", "status of alpha-5675?", user_id="mallory",
                             overrides={"memory.scope": "user"})
    assert stranger["l3"] == []


async def test_run_time_overrides_tune_the_gap_filter(runner, tmp_path):
    await load_history(runner, tmp_path)
    question = "Which tomato variety did I plant on the balcony?"
    strict = await inspect(runner, "alice-chat", question, overrides={
        "retrieval.relevance_ratio": 0.01, "retrieval.lexical_relevance_ratio": 0.01})
    assert strict["l3"] == [] and strict["prefetch"]["found"]["thematic"] > 0
    open_ = await inspect(runner, "alice-chat", question, overrides={"retrieval.relevance_ratio": 1.5})
    assert len(open_["l3"]) > len(strict["l3"])


async def test_entries_injected_into_an_answered_turn_get_their_access_bumped(settings, embeddings, tmp_path):
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            await load_history(runner, tmp_path)
            memory = runner.services.memory
            store = await memory._backends.l3.episodic()
            inspected = await inspect(runner, "alice-chat", "status of alpha-5675?")
            await measurement_hooks(memory).settle()
            ids = [e["id"] for e in inspected["l3"]]
            assert ids and all(h["metadata"]["access_count"] == 0 for h in store.get_by_ids(["alice-chat"], ids))

            state = await runner.run("alice-chat", "status of alpha-5675?", now=NOW.timestamp())
            await measurement_hooks(memory).settle()
            assert [e["id"] for e in state["l3"]] == ids
            hits = store.get_by_ids(["alice-chat"], ids)
            assert all(h["metadata"]["access_count"] == 1 for h in hits)
            assert all(h["metadata"]["last_accessed"] == NOW.timestamp() for h in hits)
        finally:
            await runner.aclose()


async def test_reimport_adds_nothing(runner, tmp_path):
    await load_history(runner, tmp_path)
    again = await load_history(runner, tmp_path)
    assert again["imported"] == 0 and again["skipped"] == 18
    store = await runner.services.memory._backends.l3.episodic()
    assert store.count("alice-chat") == 18
    completed, working, _ = await runner.services.memory.working("alice-chat", 100)
    assert completed == 18 and len(working) == 36


# ---- failure isolation and the deadline ------------------------------------------


class StuckSearchStore(EpisodicStore):
    """A real store whose vector search blocks until released: a search stuck in its thread."""

    release = threading.Event()
    entered = threading.Event()

    def search(self, *args, **kwargs):
        self.entered.set()
        self.release.wait(timeout=60)
        return super().search(*args, **kwargs)


async def test_a_stuck_search_does_not_hold_the_turn(settings, embeddings, tmp_path):
    store = StuckSearchStore.embedded(tmp_path / "chroma", embeddings)
    runner = make_runner(settings, embeddings, episodic=store)
    try:
        await load_history(runner, tmp_path)
        report = await inspect(runner, "alice-chat", "status of alpha-5675?",
                               overrides={"prefetch.timeout": 0.2})
        # The turn finished while the search was still blocked in its worker thread.
        assert store.entered.is_set() and not store.release.is_set()
        assert report["prefetch"]["timed_out"] == ["thematic"]
        assert "thematic timed out" in report["degraded"]["prefetch"]
        # The other mechanism was not spoiled by the stuck one.
        assert report["prefetch"]["succeeded"] == ["lexical", "specific_key"]
        assert any(e["mechanism"] == "specific_key" for e in report["l3"])
    finally:
        StuckSearchStore.release.set()
        await runner.aclose()


class BrokenLookupStore(EpisodicStore):
    """Reads by id fail: the specific-key mechanism's lookups (thematic never reads by id)."""

    def get_by_ids(self, *args, **kwargs):
        raise RuntimeError("id lookup corrupted")


async def test_one_failing_mechanism_does_not_spoil_the_others(settings, embeddings, tmp_path):
    runner = make_runner(settings, embeddings,
                         episodic=BrokenLookupStore.embedded(tmp_path / "chroma", embeddings))
    try:
        await load_history(runner, tmp_path)
        report = await inspect(runner, "alice-chat", "any news on alpha-5675 since the rollback?")
        assert "id lookup corrupted" in report["prefetch"]["failed"]["specific_key"]
        assert "thematic" in report["prefetch"]["succeeded"]
        assert report["l3"] and all(e["mechanism"] == "thematic" for e in report["l3"])
        assert "specific_key failed" in report["degraded"]["prefetch"]
    finally:
        await runner.aclose()


def letta_down(settings: Settings, port: int) -> Settings:
    """Facts in a Letta at a port where nothing listens."""
    return settings.model_copy(update={"letta": settings.letta.model_copy(update={"url": f"http://127.0.0.1:{port}"})})


async def test_facts_store_down_leaves_l1_empty_and_the_turn_goes_on(settings, embeddings, tmp_path, closed_port):
    runner = make_runner(letta_down(settings, closed_port), embeddings)
    try:
        await load_history(runner, tmp_path)
        state = await runner.inspect("alice-chat", "Which tomato variety did I plant?", now=NOW.timestamp())
        assert state["facts"] == {}
        assert "facts store unavailable (ConnectError" in state["degraded"]["load_identity"]
        assert state["l3"]
    finally:
        await runner.aclose()


async def test_chroma_down_costs_only_l3(settings, embeddings, tmp_path, unused_tcp_port):
    down = settings.model_copy(update={"chroma": settings.chroma.model_copy(
        update={"url": f"http://127.0.0.1:{unused_tcp_port}"})})
    with FakeOpenAI() as fake:
        fake.reply("Sorry, I cannot recall that right now.")
        runner = make_runner(with_model(down, fake), embeddings)
        try:
            await runner.services.memory.connect(warm=True)  # Chroma down is not fatal at start either
            state = await runner.run("alice-chat", "Which tomato variety did I plant?", now=NOW.timestamp())
            assert state["reply"] == "Sorry, I cannot recall that right now."
            assert state["l3"] == [] and "failed" in state["degraded"]["prefetch"]
            assert "queued in the outbox (1 waiting)" in state["degraded"]["archive"]
            completed, working, _ = await runner.services.memory.working("alice-chat", 10)
            assert completed == 1 and [m["role"] for m in working] == ["user", "assistant"]
        finally:
            await runner.aclose()


async def test_redis_down_at_start_is_a_clear_error(tmp_path, embeddings, unused_tcp_port):
    settings = Settings(data_dir=tmp_path, redis={"url": f"redis://127.0.0.1:{unused_tcp_port}/0"})
    runner = make_runner(settings, embeddings)
    try:
        with pytest.raises(BackendUnavailable, match=r"redis is unavailable: cannot reach redis://127\.0\.0\.1"):
            await runner.inspect("alice-chat", "hello")
    finally:
        await runner.aclose()


# ---- a whole turn, with the model --------------------------------------------------


def with_model(settings: Settings, fake: FakeOpenAI) -> Settings:
    return settings.model_copy(update={"llm": settings.llm.model_copy(
        update={"model": "fake-model", "api_key": "test-key", "base_url": fake.base_url})})


async def test_a_turn_answers_saves_and_archives_verbatim(settings, embeddings, tmp_path):
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            await load_history(runner, tmp_path)
            fake.reply("You planted San Marzano tomatoes.")
            state = await runner.run("alice-chat", "Which tomatoes did I plant?", user_id="alice",
                                     now=NOW.timestamp())
            assert state["reply"] == "You planted San Marzano tomatoes."
            turn = len(HISTORY) + 1
            assert state["turn"] == turn and state["archive_id"] == archive_id("alice-chat", turn)

            request = fake.requests[-1]
            system = request["messages"][0]
            assert system["role"] == "system"
            assert "[Recalled from earlier conversations]" in system["content"]
            assert "San Marzano" in system["content"]
            # L2 goes as real messages, oldest first, the new message last.
            roles = [m["role"] for m in request["messages"][1:]]
            assert roles[-1] == "user" and request["messages"][-1]["content"] == "Which tomatoes did I plant?"
            assert roles[:-1] == ["user", "assistant"] * len(HISTORY)

            memory = runner.services.memory
            completed, working, _ = await memory.working("alice-chat", 100)
            assert completed == turn and working[-1]["content"] == "You planted San Marzano tomatoes."
            assert [m["tokens"] for m in working[-2:]] == [count_tokens(m["content"]) for m in working[-2:]]
            assert await measurement_hooks(memory).settle() == 0  # the archive is written behind the reply
            store = await memory._backends.l3.episodic()
            [entry] = store.get_by_ids(["alice-chat"], [state["archive_id"]])
            assert entry["content"] == "user: Which tomatoes did I plant?\nassistant: You planted San Marzano tomatoes."
            meta = entry["metadata"]
            assert (meta["tags"], meta["chat_id"], meta["user_id"], meta["turn"]) == (ARCHIVE_TAG, "alice-chat", "alice", turn)
            assert meta["timestamp"] == NOW.timestamp() and meta["access_count"] == 0 and meta["last_accessed"] > 0

            # Replaying the archive of the same turn never duplicates it.
            await memory._archiver.write([Exchange("alice-chat", "alice", turn, NOW.timestamp(), "x", "y")], now=NOW.timestamp())
            assert store.count("alice-chat") == turn
        finally:
            await runner.aclose()


async def test_a_repeat_question_sees_the_turn_just_archived(settings, embeddings, tmp_path):
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            await load_history(runner, tmp_path)
            question = "What is the name of my cat?"
            first = await inspect(runner, "alice-chat", question)
            again = await inspect(runner, "alice-chat", question)
            assert again["prefetch"]["cache"]["hit"] is True
            fake.reply("Noted: your cat is called Pixel.")
            await runner.run("alice-chat", "My cat is called Pixel, a grey tabby.", now=NOW.timestamp())
            await measurement_hooks(runner.services.memory).settle()  # written behind the reply
            after = await inspect(runner, "alice-chat", question)
            assert after["prefetch"]["cache"]["hit"] is False  # the archive invalidated it
            assert any("Pixel" in e["content"] for e in after["l3"])
            assert not any("Pixel" in e["content"] for e in first["l3"])
        finally:
            await runner.aclose()


async def test_warm_up_leaves_start_up_objects_out_of_the_collectors_scans(settings, embeddings, tmp_path):
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            await runner.warm_up()
            graph = await runner.graph()
            assert gc.get_freeze_count() > 0
            assert not any(o is graph for o in gc.get_objects())  # frozen: no generation holds it
            await load_history(runner, tmp_path)
            fake.reply("Noted.")
            state = await runner.run("alice-chat", "My cat is called Pixel.", now=NOW.timestamp())
            assert state["reply"] == "Noted." and state["archive_id"]
            assert any(o is state for o in gc.get_objects())  # what turns make is still collected
        finally:
            await runner.aclose()


async def test_no_model_configured_stops_with_the_variables_to_set(runner):
    with pytest.raises(ModelNotConfigured, match="GOAT_MODEL.*OPENAI_API_KEY"):
        await runner.run("alice-chat", "hello")
    _, working, _ = await runner.services.memory.working("alice-chat", 10)
    assert working == []  # nothing half-written


# ---- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("message", ["", "   \n\t "])
async def test_empty_message_is_refused(runner, message):
    with pytest.raises(InvalidTurn, match="empty"):
        await runner.run("c", message)
    assert (await runner.services.memory.working("c", 10))[:2] == (0, [])


async def test_empty_message_reaching_the_graph_directly_writes_nothing(runner):
    with pytest.raises(InvalidTurn):
        await build_graph().ainvoke({"chat_id": "c", "message": ""},
                                    context=runner.context())
    assert (await runner.services.memory.working("c", 10))[:2] == (0, [])


async def test_a_turns_input_is_checked_once_whatever_starts_it(settings, embeddings, monkeypatch):
    """The runner checks it before it takes the chat, and the graph then does not; the graph
    checks what anything else hands it (LangGraph's server, a direct call)."""
    checked: list[str] = []

    def counted(turn):
        checked.append(turn["message"])
        check_input(turn)

    monkeypatch.setattr("graph.runner.check_input", counted)
    monkeypatch.setattr("nodes.load_working.check_input", counted)
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            await runner.run("once", "run", now=NOW.timestamp())
            await runner.inspect("once", "inspected", now=NOW.timestamp())
            await build_graph().ainvoke(turn_input("once", "direct", now=NOW.timestamp()), context=runner.context())
        finally:
            await runner.aclose()
    assert checked == ["run", "inspected", "direct"]


async def test_a_huge_message_is_kept_verbatim_and_broken_unicode_is_refused(settings, embeddings):
    huge = ("The quick brown fox jumps over the lazy dog. " * 2400)[:100_000]
    broken = "caf\udce9 au lait \ud83d"  # lone surrogates, as a bad client may send
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            await runner.services.memory.connect(warm=True)
            first = await runner.run("c", huge, now=NOW.timestamp())
            with pytest.raises(InvalidTurn, match=r"^the message holds text that is not valid Unicode"):
                await runner.run("c", broken, now=NOW.timestamp())
            assert await measurement_hooks(runner.services.memory).settle() == 0
            store = await runner.services.memory._backends.l3.episodic()
            [entry] = store.get_by_ids(["c"], [first["archive_id"]])
            assert entry["content"] == f"user: {huge}\nassistant: ok"
            assert store.count("c") == 1  # nothing of the broken one written
            assert len(fake.requests) == 1 and fake.requests[0]["messages"][-1]["content"] == huge
        finally:
            await runner.aclose()


async def test_malformed_transcript_names_the_line_and_imports_nothing(runner, tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"chat_id": "c", "role": "user", "content": "hi", "timestamp": 1})
    path.write_text(good + "\n" + good + "\n{not json\n", encoding="utf-8")
    with pytest.raises(TranscriptError, match=r"^line 3: "):
        await import_transcript(runner.services.memory, path)
    path.write_text(good + "\n" + json.dumps({"chat_id": "c", "role": "robot", "content": "x", "timestamp": 1}) + "\n")
    with pytest.raises(TranscriptError, match=r"^line 2: role must be"):
        await import_transcript(runner.services.memory, path)
    assert (await runner.services.memory.working("c", 10))[:2] == (0, [])


async def test_yesterday_is_read_on_the_users_clock(runner, tmp_path):
    await load_history(runner, tmp_path)
    # 15:00 UTC is already 05:00 on the 22nd in Kiritimati (UTC+14): "yesterday" is the 21st there.
    report = await inspect(runner, "alice-chat", "what did we discuss yesterday?",
                           overrides={"prefetch.timezone": "Pacific/Kiritimati"})
    start, end = report["prefetch"]["range"]
    assert start == "2026-11-21T00:00:00+14:00" and end.startswith("2026-11-21T23:59:59")


async def test_the_served_graph_builds_its_services_from_the_environment(monkeypatch, tmp_path, redis_url):
    """What `langgraph dev` does: invoke the module's graph with no services in the context."""
    with FakeOpenAI() as fake:
        for name, value in {"GOAT_DATA_DIR": str(tmp_path), "GOAT_REDIS_URL": redis_url,
                            "GOAT_MODEL": "fake-model", "OPENAI_API_KEY": "test-key",
                            "OPENAI_BASE_URL": fake.base_url}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(Services, "_server_instance", None)
        fake.reply("hello from the served graph")
        try:
            state = await graph.ainvoke({"chat_id": "studio", "message": "hi"},
                                        context={"prefetch_timeout": 2})
            assert state["reply"] == "hello from the served graph" and state["turn"] == 1
            served = Services._server_instance
            assert served is not None and served.settings.prefetch.timeout == 0.5
            completed, working, _ = await served.memory.working("studio", 10)
            assert completed == 1
            assert [(m["role"], m["content"]) for m in working] == [
                ("user", "hi"), ("assistant", "hello from the served graph")]
        finally:
            if Services._server_instance is not None:
                await Services._server_instance.aclose()


async def test_transcript_bytes_that_are_not_utf8_are_refused_not_stored_as_replacement_characters(runner, tmp_path):
    path = tmp_path / "latin1.jsonl"
    line = json.dumps({"chat_id": "c", "role": "user", "content": "café", "timestamp": 1}, ensure_ascii=False)
    path.write_bytes(line.encode("utf-8").replace("é".encode("utf-8"), b"\xe9") + b"\n")  # a Latin-1 é
    with pytest.raises(TranscriptError, match=r"^line 1: not UTF-8: the byte 0xe9 at byte offset 48 of the file$"):
        await import_transcript(runner.services.memory, path)
    assert (await runner.services.memory.working("c", 10))[1] == []


async def test_process_settings_cannot_be_overridden_per_run(runner):
    for key, value in {"cache.ttl_seconds": 5, "redis.url": "redis://127.0.0.1:1", "llm.model": "x"}.items():
        with pytest.raises(SettingsError, match=rf"setting {key} is fixed for the process"):
            await runner.inspect("alice-chat", "hello", overrides={key: value})
    # A misspelt knob is not "fixed": it is unknown, and the closest name is offered.
    with pytest.raises(SettingsError, match=r"unknown setting retrieval.gap_significanse .*retrieval.gap_significance"):
        await runner.inspect("alice-chat", "hello", overrides={"retrieval.gap_significanse": 2})


async def test_turns_of_one_chat_sent_at_once_run_one_after_another(settings, embeddings):
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            await runner.services.memory.connect(warm=True)
            messages = [f"message number {n}" for n in range(1, 5)]
            states = await asyncio.gather(*(runner.run("busy", m, now=NOW.timestamp()) for m in messages))
            assert sorted(s["turn"] for s in states) == [1, 2, 3, 4]
            completed, working, _ = await runner.services.memory.working("busy", 100)
            assert completed == 4
            users = [m["content"] for m in working if m["role"] == "user"]
            assert sorted(users) == messages and len(set(s["archive_id"] for s in states)) == 4
            assert await measurement_hooks(runner.services.memory).settle() == 0
            store = await runner.services.memory._backends.l3.episodic()
            assert store.count("busy") == 4
        finally:
            await runner.aclose()


async def test_a_turn_that_loses_the_race_for_its_number_does_not_overwrite_the_winner(settings, embeddings):
    """Without the runner's turn lock (Studio, or a worker that skips it), the loser fails instead."""
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            await runner.services.memory.connect(warm=True)
            first, second = await asyncio.gather(
                *(build_graph().ainvoke(turn_input("race", m, now=NOW.timestamp()), context=runner.context())
                  for m in ("winner or loser one", "winner or loser two")),
                return_exceptions=True,
            )
            outcomes = [first, second]
            assert sum(isinstance(o, TurnConflict) for o in outcomes) == 1
            [winner] = [o for o in outcomes if isinstance(o, dict)]
            assert await measurement_hooks(runner.services.memory).settle() == 0
            store = await runner.services.memory._backends.l3.episodic()
            [entry] = store.get_by_ids(["race"], [archive_id("race", 1)])
            assert entry["content"].startswith(f"user: {winner['message']}\n")
        finally:
            await runner.aclose()


async def test_a_model_load_cut_short_by_the_deadline_goes_on_for_the_next_turn(settings, monkeypatch):
    """Studio's server never warms up: the first turns may give up on a cold model, not the load."""
    import memory.stores.archive_encoder

    loads = []

    class CountedEmbeddings(LocalEmbeddings):
        def __init__(self, *args):
            loads.append(self)
            super().__init__(*args)

    monkeypatch.setattr(memory.stores.archive_encoder, "LocalEmbeddings", CountedEmbeddings)
    runner = TurnRunner(CheckpointedServices(settings))
    try:
        quick = {"prefetch.timeout": 0.01}
        first = await inspect(runner, "cold", "what did I plant?", overrides=quick)
        second = await inspect(runner, "cold", "what did I plant?", overrides=quick)
        assert "thematic" in first["prefetch"]["timed_out"]
        await runner.services.memory._backends.encoder.embeddings()  # the one load, still under way or done
        third = await inspect(runner, "cold", "what did I plant?", overrides={"prefetch.timeout": 5})
        assert third["prefetch"]["timed_out"] == [] and len(loads) == 1
        assert second["prefetch"]["deadline_ms"] == 10
    finally:
        await runner.aclose()


async def test_a_stepped_turn_shows_none_of_the_last_turns_results_once_it_has_started(settings, embeddings):
    """Studio steps a turn on the chat's thread, which holds the last turn's state: after the
    first step, its split, reply, tool calls and later nodes' timings are gone."""
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            fake.reply("first answer")
            first = await runner.run("stepped", "hello there", now=NOW.timestamp())
            assert first["split"] and first["reply"] == "first answer"
            graph, config = await runner.graph(), {"configurable": {"thread_id": "stepped"}}
            async for _ in graph.astream(turn_input("stepped", "and now?", now=NOW.timestamp() + 60), config,
                                         context=runner.context(), interrupt_after=["load_working"]):
                pass
            values = (await graph.aget_state(config)).values
            assert values["turn"] == 2 and values["message"] == "and now?"
            for field in ("split", "reply", "l3", "tokens", "prompt", "verdicts", "archive_id"):
                assert values.get(field) is None, field
            assert set(values["latency_ms"]) <= {"prefetch", "load_identity", "load_working"}
            assert set(values["degraded"]) <= {"prefetch", "load_identity", "load_working"}
        finally:
            await runner.aclose()


def test_the_served_graph_describes_its_input_output_and_knobs_for_studios_form():
    schema = graph.get_input_jsonschema()
    assert schema["required"] == ["chat_id", "message"]
    assert set(schema["properties"]) == {"chat_id", "message", "user_id", "user_name", "now"}
    assert all(field.get("description") for field in schema["properties"].values())
    output = graph.get_output_jsonschema()["properties"]
    assert {"reply", "split", "l3", "degraded"} <= set(output)
    assert all(field.get("description") for field in output.values())
    knobs = graph.get_context_jsonschema()["properties"]
    assert "services" not in knobs and "prefetch_timeout" in knobs
    assert all(field.get("description") for field in knobs.values())
