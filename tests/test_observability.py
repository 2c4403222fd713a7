"""The per-turn observation on real turns: real Redis, Chroma and MiniLM, the model faked
over loopback. Plus the file's rotation, the percentile aggregator and the `goat stats` summary."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import pytest

from graph.observability.stats import render_stats, summarize
from graph.observability.turn_log import LatencyAggregator, TurnLog, turns_log_path
from memory.facade import measurement_hooks
from bench.support.fakes import FakeOpenAI
from graph.settings import Settings, load_settings
from memory.credentials import MASK
from memory.encoders.embeddings import LocalEmbeddings
from test_graph import NOW, letta_down, make_runner, with_model

pytestmark = pytest.mark.slow

NODES = {"prefetch", "load_identity", "load_working", "gap_filter", "budget", "assemble", "llm", "save", "archive"}
LINE_KEYS = {"event", "timestamp", "chat_id", "user_id", "turn", "wall_ms", "chat_wait_ms", "latency_ms", "aits", "split",
             "tokens", "cache", "prefetch", "degraded"}  # fmt: skip
PREFETCH_KEYS = {"fired", "succeeded", "timed_out", "failed", "found", "filtered", "injected",
                 "injected_by_mechanism", "injected_entries", "keys", "range", "waited_ms", "deadline_ms"}  # fmt: skip
# A message whose words would be recognisable anywhere in a line, including as a structural key.
SHED = "The garden shed padlock code is zebra-9911, do not tell the neighbours."
SHED_REPLY = "Noted: zebra-9911 for the shed padlock."
OPENAI_KEY = "sk-goat-test-OPENAIKEY-4f9c2b7e"
BOT_TOKEN = "987654321:TELEGRAM-TOKEN-8d1e5a"


def turn_lines(settings: Settings) -> list[dict]:
    return [json.loads(line) for line in turns_log_path(settings).read_text("utf-8").splitlines()]


async def run_turns(settings: Settings, embeddings: LocalEmbeddings, fake: FakeOpenAI,
                    exchanges: list[tuple[str, str]], chat_id: str = "obs-chat") -> list[dict]:
    runner = make_runner(with_model(settings, fake), embeddings)
    try:
        states = []
        for message, reply in exchanges:
            fake.reply(reply)
            states.append(await runner.run(chat_id, message, user_id="obs-user", now=NOW.timestamp()))
            # Turns of a person, seconds apart: the archive written behind each reply has landed.
            assert await measurement_hooks(runner.services.memory).settle() == 0
        return states
    finally:
        await runner.aclose()


# ---- the line of a real turn ---------------------------------------------------------------


async def test_each_turn_writes_one_line_with_every_field_to_the_logger_and_the_file(
    settings, embeddings, caplog
):
    caplog.set_level(logging.INFO, logger="goat.turns")
    with FakeOpenAI() as fake:
        states = await run_turns(settings, embeddings, fake, [(SHED, SHED_REPLY), ("What is the shed code zebra-9911?", "zebra-9911.")])

    lines = turn_lines(settings)
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "goat.turns"]
    assert logged == lines and len(lines) == 2
    first, second = lines
    for line, state in zip(lines, states):
        assert set(line) == LINE_KEYS  # and no message text: log_content is off by default
        assert set(line["prefetch"]) == PREFETCH_KEYS
        assert line["event"] == "turn" and datetime.fromisoformat(line["timestamp"]).tzinfo is not None
        assert (line["chat_id"], line["user_id"]) == ("obs-chat", "obs-user")
        assert line["latency_ms"] == state["latency_ms"] and set(line["latency_ms"]) >= NODES
        # The wall time holds every node of the chain after the join (they run one after another).
        chain = ("gap_filter", "budget", "assemble", "llm", "save", "archive")
        assert line["wall_ms"] >= sum(line["latency_ms"][n] for n in chain)
        assert line["aits"] == {k: state["aits"][k] for k in ("confidence", "complexity", "budget")}
        assert line["tokens"] == state["tokens"] and set(line["tokens"]) == {"l0_l1", "l2", "l3"}
        assert line["split"] == state["split"]
        assert line["cache"]["hit"] is False and line["cache"]["key"] == state["prefetch"]["cache"]["key"]
        assert line["prefetch"]["filtered"] == len(state["l3_candidates"])
        assert line["prefetch"]["injected"] == len(state["l3"])
        assert line["degraded"] == {}
    assert (first["turn"], second["turn"]) == (1, 2)
    assert first["tokens"]["l2"] == 0 and second["tokens"]["l2"] > 0  # the first exchange is L2 now
    # The second turn names a structural key: the exact lookup fired and found the first turn.
    assert second["prefetch"]["fired"] == ["thematic", "lexical", "specific_key"]
    assert second["prefetch"]["found"]["specific_key"] == 1 and second["prefetch"]["keys"] == 1
    assert second["prefetch"]["injected_by_mechanism"].get("specific_key") == 1
    assert "zebra" not in json.dumps(lines)  # neither the messages nor the keys found in them


async def test_a_cache_hit_and_a_degraded_backend_are_recorded(settings, embeddings, closed_port):
    # A deadline no loaded host reaches: what is checked is what a degraded backend records.
    patient = settings.model_copy(update={"prefetch": settings.prefetch.model_copy(update={"timeout": 30.0})})
    runner = make_runner(letta_down(patient, closed_port), embeddings)
    try:
        question = "What did we decide about the holiday?"
        await runner.inspect("obs-chat", question)
        state = await runner.inspect("obs-chat", question)  # the same search again: from L2.5
        line = runner.observer.record(state, wall_ms=12.5)
    finally:
        await runner.aclose()

    assert line["cache"] == {"hit": True, "key": state["prefetch"]["cache"]["key"]}
    assert line["degraded"] == {"load_identity": "facts store unavailable (ConnectError: All connection attempts failed)"}
    assert line["wall_ms"] == 12.5
    assert turn_lines(settings) == [line]


async def test_message_text_is_logged_only_with_log_content_on(settings, embeddings):
    with FakeOpenAI() as fake:
        await run_turns(settings, embeddings, fake, [(SHED, SHED_REPLY)], chat_id="quiet")
        loud = settings.model_copy(update={"observability": settings.observability.model_copy(
            update={"log_content": True})})  # fmt: skip
        await run_turns(loud, embeddings, fake, [(SHED, SHED_REPLY)], chat_id="loud")

    quiet_line, loud_line = turn_lines(settings)  # both runners write the same data folder's file
    assert quiet_line["chat_id"] == "quiet" and loud_line["chat_id"] == "loud"
    assert "message" not in quiet_line and "reply" not in quiet_line
    assert "padlock" not in json.dumps(quiet_line)
    assert (loud_line["message"], loud_line["reply"]) == (SHED, SHED_REPLY)


async def test_api_key_and_bot_token_appear_nowhere(tmp_path, redis_url, embeddings, caplog, monkeypatch):
    """Even where a backend's error text or the user's own message carries them."""
    for name, value in {"OPENAI_API_KEY": OPENAI_KEY, "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
                        "GOAT_DATA_DIR": str(tmp_path), "GOAT_REDIS_URL": redis_url,
                        "GOAT_MODEL": "fake-model", "GOAT_OBSERVABILITY__LOG_CONTENT": "true"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)  # every logger, every level

    class LeakyFactsStore:
        async def get_all(self, user_id):
            raise PermissionError(f"denied for token {BOT_TOKEN} at https://admin:hunter2@facts.example/api")

    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        settings = load_settings()
        assert settings.llm.api_key.get_secret_value() == OPENAI_KEY
        runner = make_runner(settings, embeddings, facts=LeakyFactsStore())
        try:
            fake.reply(f"Never paste keys like {OPENAI_KEY} here.")
            await runner.run("secret-chat", f"my key is {OPENAI_KEY} and the bot token {BOT_TOKEN}")
        finally:
            await runner.aclose()
        assert fake.request_headers[-1]["authorization"] == f"Bearer {OPENAI_KEY}"  # the key was really in use

    [line] = turn_lines(settings)
    stats = render_stats(summarize([line]), turns_log_path(settings)) + json.dumps(summarize([line]))
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    written = turns_log_path(settings).read_text("utf-8")
    for text in (logged, written, stats):
        assert OPENAI_KEY not in text and BOT_TOKEN not in text and "hunter2" not in text
    assert line["message"] == f"my key is {MASK} and the bot token {MASK}"
    assert line["reply"] == f"Never paste keys like {MASK} here."
    assert line["degraded"]["load_identity"] == (
        f"facts store unavailable (PermissionError: denied for token {MASK} at https://{MASK}@facts.example/api)"
    )


# ---- the file, the aggregator, the summary --------------------------------------------------


def test_the_turns_file_is_rotated_so_it_stays_bounded_and_tail_reads_across_both(tmp_path):
    log = TurnLog(tmp_path / "logs" / "turns.jsonl", max_bytes=10_000)
    lines = [json.dumps({"event": "turn", "turn": n, "pad": "x" * 200}) for n in range(1, 301)]
    for line in lines:
        log.append(line)

    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["turns.1.jsonl", "turns.jsonl"]
    assert all(p.stat().st_size < 10_000 + 300 for p in (tmp_path / "logs").iterdir())  # one line over, at most
    turns = [line["turn"] for line in log.tail(1000)]
    assert turns == list(range(turns[0], 301)) and 40 < len(turns) < 100  # the newest, in order, no gaps
    assert [line["turn"] for line in log.tail(5)] == [296, 297, 298, 299, 300]


def test_tail_passes_over_a_line_cut_short_and_lines_of_other_events(tmp_path):
    path = tmp_path / "turns.jsonl"
    path.write_text('{"event": "turn", "turn": 1}\n{"event": "turn", "tu\n{"event": "other"}\n'
                    '{"event": "turn", "turn": 2}\n', encoding="utf-8")  # fmt: skip

    assert [line["turn"] for line in TurnLog(path, 10_000).tail(10)] == [1, 2]
    assert TurnLog(tmp_path / "missing.jsonl", 10_000).tail(10) == []


def test_the_aggregator_logs_percentiles_every_n_turns_over_a_bounded_window(caplog):
    caplog.set_level(logging.INFO, logger="goat.turns")
    aggregator = LatencyAggregator(window=4, report_every=3)
    for ms in (100, 1, 2, 3, 4, 5):
        aggregator.add({"latency_ms": {"llm": float(ms)}, "wall_ms": ms + 10.0})

    reports = [json.loads(r.getMessage()) for r in caplog.records]
    assert [r["turns"] for r in reports] == [3, 6]
    assert reports[0]["latency_ms"]["llm"] == {"p50": 2.0, "p95": 100.0, "max": 100.0, "n": 3}
    # After six turns the window holds the last four: the 100 ms outlier has left it.
    assert reports[1]["latency_ms"]["llm"] == {"p50": 3.0, "p95": 5.0, "max": 5.0, "n": 4}
    assert reports[1]["latency_ms"]["total"]["max"] == 15.0


def test_summary_counts_mechanisms_cache_degradations_and_tokens():
    def line(n: int, **fields) -> dict:
        return {"event": "turn", "timestamp": f"2026-11-21T10:00:0{n}+00:00", "wall_ms": 100.0 * n,
                "latency_ms": {"prefetch": 10.0 * n, "llm": 50.0 * n},
                "tokens": {"l0_l1": 100, "l2": 200 * n, "l3": 30 * n}, **fields}  # fmt: skip

    lines = [
        line(1, cache={"hit": False, "key": "a"}, prefetch={"fired": ["thematic"], "succeeded": ["thematic"],
             "found": {"thematic": 15}, "filtered": 3, "injected": 2, "injected_by_mechanism": {"thematic": 2}}),
        line(2, cache={"hit": True, "key": "a"}, prefetch={"fired": ["thematic", "temporal"],
             "succeeded": ["thematic"], "timed_out": ["temporal"], "found": {"thematic": 15},
             "filtered": 5, "injected": 4, "injected_by_mechanism": {"thematic": 4}},
             degraded={"prefetch": "temporal timed out"}),
        line(3, cache={"hit": None, "key": None}, prefetch={"fired": ["thematic"], "failed": {"thematic": "boom"},
             "filtered": 0, "injected": 0}, degraded={"prefetch": "thematic failed (boom)", "archive": "x"}),
    ]  # fmt: skip

    summary = summarize(lines)

    assert summary["turns"] == 3 and summary["from"].endswith("01+00:00") and summary["to"].endswith("03+00:00")
    assert list(summary["latency_ms"]) == ["prefetch", "llm", "total"]
    assert summary["latency_ms"]["llm"] == {"p50": 100.0, "p95": 150.0, "max": 150.0, "n": 3}
    assert summary["latency_ms"]["total"]["p50"] == 200.0
    assert summary["cache"] == {"hits": 1, "misses": 1, "hit_rate": 0.5}  # no lookup is neither
    prefetch = summary["prefetch"]
    assert prefetch["fired"] == {"thematic": 3, "temporal": 1}
    assert prefetch["succeeded"] == {"thematic": 2} and prefetch["timed_out"] == {"temporal": 1}
    assert prefetch["failed"] == {"thematic": 1} and prefetch["found"] == {"thematic": 30}
    assert prefetch["injected_by_mechanism"] == {"thematic": 6}
    assert prefetch["per_turn_p50"] == {"filtered": 3, "injected": 2}
    assert summary["degraded"] == {"prefetch": 2, "archive": 1}
    assert summary["tokens_p50"] == {"l0_l1": 100, "l2": 400, "l3": 60}
    text = render_stats(summary, Path("turns.jsonl"))
    assert "last 3 turn(s)" in text and "hit rate 50%" in text and "degraded: prefetch 2 · archive 1" in text
    assert any(row.split() == ["llm", "100.0", "150.0", "150.0"] for row in text.splitlines())


def test_summary_of_no_turns_says_so():
    summary = summarize([])
    assert summary["turns"] == 0 and summary["latency_ms"] == {} and summary["cache"]["hit_rate"] is None
    assert render_stats(summary, Path("/data/logs/turns.jsonl")).startswith("no turns recorded yet")
