"""`goat bench` runs end to end on a tiny archive and a tiny LoCoMo-shaped file, on the real
backends (embedded Redis, embedded Chroma, MiniLM), and writes every section's JSON.

The benchmark is a tool, not a test: nothing here judges the figures it measures.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import chromadb
import numpy as np
import pytest
import redis.asyncio
from chromadb.config import Settings as ChromaSettings

from bench import bilingual, bot_load, implicit, load, longmemeval, realtalk, scale, seed, throughput
from bench.synthetic_archive import (KEY_EVERY, KINDS, LAYOUTS, OTHER_LANGUAGE_AT, OTHER_LANGUAGE_EVERY, TextPool,
                                     layout, messages, turn_times)
from bench.cli import SECTIONS
from bench.overhead import NODES
from bench.retrieval import OFF_TOPIC, methods
from bot.cli import main
from graph.checkpoint import DEFAULT_KEEP_TURNS
from graph.importing.exports import read_export
from graph.settings import Settings
from memory.encoders.paired import PairedEncoder
from memory.stores.episodic import collection_name
from memory.retrieval.message.keys import structural_keys
from memory.stores.redis_backend import PREFIX
from memory.stores.lexical import LexicalIndex
from memory.stores.redis_server import EmbeddedRedis
from memory.retrieval.message.dates import completed_past_range
from bench.support.fakes.telegram_server import FakeTelegram
from bench.support import locomo
from bench.support.bilingual import ASKED, LINES, conversations

SIZE = 30
ARCHIVE = f"archive-{SIZE}-{Settings().embeddings.model}"  # each encoder's archives apart
TURNS = 2  # per archive size, chat layout and message kind
PNG_MAGIC = b"\x89PNG"
CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)


@pytest.fixture
def tiny_locomo(tmp_path: Path) -> Path:
    """The first shipped synthetic chat cut to its first two sessions (31 turns) and their questions."""
    record = locomo.load(locomo.SYNTHETIC_PATH)[0]
    path = tmp_path / "tiny-locomo.json"
    path.write_text(json.dumps([locomo.make_sample(record, sessions=2)]), encoding="utf-8")
    return path


# Pairs in LoCoMo-Plus's shape, in phrasings of our own: (relation, cue, trigger, time gap).
TINY_PAIRS = [
    ("causal", "A: Since I started turning down extra shifts, my evenings feel like mine.\nB: Good for you.",
     "A: They talked me into the weekend rota and now I never get a night off.", "two months later"),
    ("state", "A: I've been sleeping badly since the neighbours got a dog.\nB: That's rough.",
     "A: The dog next door finally moved away with its owners.", "about six weeks later"),
    ("goal", "A: I want to swim a full kilometre without stopping by summer.\nB: You can do it.",
     "A: I bought a season pass for the lake.", "a few weeks later"),
    ("value", "A: Honesty matters more to me than being liked.",
     "A: I told my manager the launch date was not realistic.", "one year later"),
]


@pytest.fixture
def tiny_pairs(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-plus.json"
    path.write_text(json.dumps([{"relation_type": relation, "cue_dialogue": cue, "trigger_query": trigger,
                                 "time_gap": gap} for relation, cue, trigger, gap in TINY_PAIRS]), encoding="utf-8")
    return path


def made_up_item(number: int) -> dict:
    """An assistant's chat in LongMemEval's layout, in words of our own: a long reply hides the answer."""
    advice = "Here is one more general idea you may like to consider. " * 10
    sessions = {
        "session_1_date_time": "10:00 am on 3 March, 2023",
        "session_1": [{"speaker": "user", "dia_id": "S1:0", "text": f"I just bought a smoker number {number}."},
                      {"speaker": "assistant", "dia_id": "S1:1",
                       "text": f"{advice}Brisket wants twelve hours in a smoker. {advice}"}],
        "session_2_date_time": "9:00 pm on 9 March, 2023",
        "session_2": [{"speaker": "user", "dia_id": "S2:0", "text": "What should I plant in spring?"},
                      {"speaker": "assistant", "dia_id": "S2:1", "text": f"Tomatoes do well. {advice}"}],
    }
    return {"sample_id": f"made-up-{number}", "asked_at": "2023-03-20T10:00:00", "question_type": "single-session-assistant",
            "conversation": {"speaker_a": "user", "speaker_b": "assistant", "plain_roles": True, **sessions},
            "qa": [{"question": "How long does brisket take in the smoker?", "answer": "twelve hours",
                    "evidence": ["S1:1"], "category": "single-session-assistant"}]}


@pytest.fixture
def tiny_longmemeval(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-longmemeval.json"
    path.write_text(json.dumps([made_up_item(0), made_up_item(1)]), encoding="utf-8")
    return path


def made_up_chat(number: int) -> dict:
    """Two people's chat in REALTALK's layout, in words of our own: one session over three days,
    each message dated its own time."""
    said = [("Ada", "Morning! Did you sleep well?", "2024-01-02T09:00:00"),
            ("Bo", "Not really, the neighbours had a party.", "2024-01-02T09:04:00"),
            ("Ada", f"Big news: I adopted a greyhound called Pixel {number}!", "2024-01-04T18:30:00"),
            ("Bo", "No way, congrats! Send pictures.", "2024-01-04T19:10:00"),
            ("Ada", "My brother starts his pottery class on Friday.", "2024-01-05T08:00:00"),
            ("Bo", "Yeah", "2024-01-05T08:02:00")]
    return {"sample_id": f"made-up-{number}", "asked_at": "2024-01-20T10:00:00",
            "conversation": {"speaker_a": "Ada", "speaker_b": "Bo", "session_1_date_time": "9:00 am on 2 January, 2024",
                             "session_1": [{"speaker": speaker, "dia_id": f"D1:{n}", "text": text, "timestamp": at}
                                           for n, (speaker, text, at) in enumerate(said, 1)]},
            "qa": [{"question": "What kind of dog did Ada adopt?", "answer": "a greyhound", "evidence": ["D1:3"],
                    "category": 1}]}


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GOAT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GOAT_PREFETCH__TIMEOUT", "0.25")  # the deadline section waits up to this per turn
    for variable in ("GOAT_REDIS_URL", "GOAT_CHROMA_URL", "GOAT_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "data"


def archived_turns(archive: Path) -> dict[str, int]:
    client = chromadb.PersistentClient(path=str(archive / "chroma"),
                                       settings=ChromaSettings(anonymized_telemetry=False))
    try:
        return {plan.chat_id: client.get_collection(collection_name(plan.chat_id)).count() for plan in layout(SIZE)}
    finally:
        client.close()


def archived_texts(archive: Path) -> list[str]:
    client = chromadb.PersistentClient(path=str(archive / "chroma"),
                                       settings=ChromaSettings(anonymized_telemetry=False))
    try:
        return [text for plan in layout(SIZE)
                for text in client.get_collection(collection_name(plan.chat_id)).get(include=["documents"])["documents"]]
    finally:
        client.close()


async def word_indexed_turns(archive: Path) -> dict[str, int]:
    """Per chat, the archived turns its word index covers (read from the archive's own Redis)."""
    with EmbeddedRedis(archive) as server:
        client = redis.asyncio.Redis.from_url(server.url)
        try:
            index = LexicalIndex(client, PREFIX)
            return {plan.chat_id: await index.indexed_turns(plan.chat_id) for plan in layout(SIZE)}
        finally:
            await client.aclose()


def test_each_cue_is_told_in_time_order_its_gap_before_the_triggers(tiny_locomo, tiny_pairs, monkeypatch):
    monkeypatch.setenv(implicit.ENV_VAR, str(tiny_pairs))
    [record] = locomo.load(tiny_locomo)
    pairs = implicit.load_pairs(implicit.data_path())
    conversation = locomo.build_conversation(implicit.splice(record, pairs))
    sent_at = implicit.trigger_time(record)
    assert conversation.last_time + timedelta(hours=1) == sent_at  # the cues are all told before it
    times = [datetime.fromisoformat(message["timestamp"]) for message in conversation.messages]
    assert times == sorted(times)
    for pair in pairs:
        told = conversation.said_at[f"P{pair.number}:1"]
        assert sent_at - pair.gap <= told < sent_at - pair.gap + timedelta(hours=2)  # or just after a session
        told_as = conversation.messages[list(conversation.dialog_to_entry).index(f"P{pair.number}:1")]
        assert (told_as["role"], told_as["content"]) == ("user", pair.cue[0][1])
    assert [p.gap.days for p in pairs] == [60, 42, 21, 365]
    assert [p.half for p in pairs] == ["tuning", "held-back", "tuning", "held-back"]


@pytest.mark.parametrize("section", [implicit, longmemeval, realtalk], ids=["implicit", "longmemeval", "realtalk"])
def test_a_section_of_data_not_shipped_is_skipped_in_one_line_without_it(section, data_dir, tiny_locomo, tmp_path,
                                                                         capsys, monkeypatch):
    name = section.__name__.rpartition(".")[2]
    monkeypatch.setattr(section, "DEFAULT_PATH", tmp_path / "absent.json")
    monkeypatch.delenv(section.ENV_VAR, raising=False)
    assert main(["bench", "--sections", name, "--locomo", str(tiny_locomo), "--out", str(tmp_path)]) == 0
    assert f"{name}: skipped (no " in capsys.readouterr().out


def test_a_message_is_dated_its_own_timestamp_where_it_has_one():
    conversation = locomo.build_conversation(made_up_chat(0))
    assert conversation.said_at["D1:3"] == datetime(2024, 1, 4, 18, 30, tzinfo=timezone.utc)  # two days in
    assert [m["timestamp"] for m in conversation.messages] == [
        f"{t['timestamp']}+00:00" for t in made_up_chat(0)["conversation"]["session_1"]]
    assert conversation.last_time == datetime(2024, 1, 5, 8, 2, tzinfo=timezone.utc)


def test_the_import_section_imports_realtalks_chats_as_goat_import_reads_them(tmp_path, monkeypatch):
    path = tmp_path / "tiny-realtalk.json"
    chats = [made_up_chat(number) for number in range(2)]
    path.write_text(json.dumps(chats), encoding="utf-8")
    monkeypatch.setenv(realtalk.ENV_VAR, str(path))
    transcript = throughput.real_transcript(tmp_path / "real.jsonl")
    turns = [chat_id for chat_id, _ in read_export(transcript).imported_turns()]
    assert turns == [f"realtalk-made-up-{n}" for n in range(2) for _ in range(locomo.build_conversation(chats[n]).turns)]
    monkeypatch.setenv(realtalk.ENV_VAR, str(tmp_path / "absent.json"))
    assert throughput.real_transcript(tmp_path / "none.jsonl") is None


def test_the_realtalk_section_asks_each_chats_questions_at_its_time_and_holds_two_chats_back(
        data_dir, tiny_locomo, tmp_path, capsys, monkeypatch):
    path = tmp_path / "tiny-realtalk.json"
    path.write_text(json.dumps([made_up_chat(number) for number in range(5)]), encoding="utf-8")
    monkeypatch.setenv(realtalk.ENV_VAR, str(path))
    out = tmp_path / "results"
    code = main(["bench", "--sections", "realtalk", "--locomo", str(tiny_locomo), "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    data = json.loads((out / "realtalk.json").read_text())
    assert [(row["chat"], row["half"], row["category"], row["evidence"]) for row in data["per_question"]] == [
        (f"made-up-{n}", "held-back" if n >= 3 else "tuning", "multi-hop", ["D1:3"]) for n in range(5)]
    for row in data["per_question"]:
        goat, plain = row["methods"]["GOAT prefetch"], row["methods"]["top-k at GOAT's tokens"]
        assert goat["recall"] == 1.0 and goat["tokens"] > 0  # the greyhound's message, in its own turn
        assert 0.0 <= plain["recall"] <= 1.0 and plain["tokens"] == goat["tokens"]
    assert {half: groups["all"]["questions"] for half, groups in data["halves"].items()} == {
        "tuning": 3, "held-back": 2}
    assert data["off_topic"]["messages"] == 5 * len(OFF_TOPIC)
    assert data["conditions"]["messages"] == 5 * 6
    assert "| held-back | multi-hop | 2 |" in printed.out


def test_the_load_section_starts_every_chats_turn_together_and_reports_each_count(data_dir, tiny_locomo, tmp_path,
                                                                                  capsys):
    out = tmp_path / "results"
    code = main(["bench", "--sections", "load", "--load-chats", "1,2", "--load-chat-turns", "10", "--load-big-chat",
                 "0", "--turns", "1", "--locomo", str(tiny_locomo), "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "| chats at once | turns in bursts | pre-reply |" in printed.out
    data = json.loads((out / "load.json").read_text())
    assert data["conditions"]["chat_turns"] == 10 and data["conditions"]["big_chat_turns"] == 0
    for chats, cell in data["by_chats"].items():
        assert cell["bursts"] == load.MIN_BURSTS and cell["turns"] == int(chats) * load.MIN_BURSTS
        assert cell["pre_reply_ms"]["n"] == cell["turns"] and cell["loop_lag_ms"]["n"] > 0
        # Every turn's reply came back once; which came first is measured, not judged.
        assert [sorted(order) for order in cell["finish_order"]] == [list(range(int(chats)))] * load.MIN_BURSTS
        assert 0.0 <= cell["degraded_share"] <= 1.0 and cell["turns_per_second"] > 0
    assert (out / "load.png").read_bytes().startswith(PNG_MAGIC)
    cached = data_dir / "bench" / f"load-2x10-big0-{Settings().embeddings.model}"
    assert json.loads((cached / "manifest.json").read_text())["complete"]


def test_the_scale_section_asks_by_every_mechanism_and_holds_no_more_chats_than_the_bound(
        data_dir, tiny_locomo, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GOAT_CHROMA__OPEN_CHATS", "2")
    out = tmp_path / "results"
    code = main(["bench", "--sections", "scale", "--scale-big-chat", "120", "--scale-chats", "4",
                 "--scale-chat-messages", "20", "--scale-add", "10", "--turns", "1", "--locomo", str(tiny_locomo), "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "| chat | asked by | path to the model |" in printed.out
    data = json.loads((out / "scale.json").read_text())
    assert (data["big_chat_messages"], data["chats"], data["chat_messages"], data["entries"]) == (120, 4, 20, 100)
    assert sorted(data["cells"]) == sorted(f"{chat}/{asked}" for chat in ("big", "small") for asked in scale.MECHANISMS)
    assert all(cell["ms"]["n"] == 1 for cell in data["cells"].values())
    assert data["cells"]["big/keys"]["fired"]["specific_key"] == 1
    assert data["cells"]["big/month"]["fired"]["temporal"] == data["cells"]["big/year"]["fired"]["temporal"] == 1
    assert data["conditions"]["open_chats"] == 2 and data["held_chats_at_end"] <= 2  # five chats touched
    assert data["rss_mb"]["after touching every chat"]["now"] > 0 and data["added_messages"] == 10
    folder = data_dir / "bench" / f"scale-120-4x20-{Settings().embeddings.model}"
    assert json.loads((folder / "manifest.json").read_text())["complete"]
    assert json.loads((folder / "build.json").read_text())["build_seconds"] == data["build_seconds"]


@pytest.mark.slow
def test_the_scale_section_measures_a_chroma_server_beside_the_serving_process(data_dir, tiny_locomo, tmp_path,
                                                                              capsys):
    out = tmp_path / "results"
    code = main(["bench", "--sections", "scale", "--scale-chroma", "server", "--scale-big-chat", "60",
                 "--scale-chats", "2", "--scale-chat-messages", "20", "--scale-add", "10", "--turns", "1",
                 "--locomo", str(tiny_locomo), "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "| chroma run: resident MB |" in printed.out
    data = json.loads((out / "scale.json").read_text())
    assert data["conditions"]["chroma"] == "server" and data["held_chats_at_end"] == 0  # the server holds them
    assert all(cell["ms"]["n"] == 1 for cell in data["cells"].values())
    assert data["cells"]["big/keys"]["fired"]["specific_key"] == 1
    assert all(figures["server_now"] > 0 for figures in data["rss_mb"].values())


@pytest.mark.slow
def test_the_bot_section_answers_every_chat_through_goat_bot_and_reads_its_stats(data_dir, tiny_locomo, tmp_path,
                                                                                   capsys):
    out = tmp_path / "results"
    code = main(["bench", "--sections", "bot", "--load-chats", "1,2", "--load-chat-turns", "10", "--locomo",
                 str(tiny_locomo), "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "| chats at once | turns (goat stats) | reply seen, ms: p50 / p95 / max |" in printed.out
    data = json.loads((out / "bot.json").read_text())
    assert data["replies_as_owed"] is True
    for chats, cell in data["by_chats"].items():
        # Every burst's turns reached goat stats' log, and each reply was seen after the model's wait.
        assert cell["turns"] == cell["reply_ms"]["n"] == int(chats) * bot_load.BURSTS
        assert cell["reply_ms"]["p50"] >= 1000 * bot_load.MODEL_SECONDS
    cached = data_dir / "bench" / f"bot-2x10-big0-{Settings().embeddings.model}"
    spec = json.loads((cached / "manifest.json").read_text())["spec"]
    assert [chat["chat_id"] for chat in spec["chats"]] == [str(load.TELEGRAM_FIRST_USER + n) for n in range(2)]


def test_a_message_sent_again_is_answered_only_once_its_new_reply_is_in():
    """The same message twice in a chat owes the same reply twice: the first one shown does not
    answer the second (the bot section once read a burst as answered before its reply came)."""
    with FakeTelegram(bot_load.TOKEN) as telegram:
        users = bot_load.Bursts(telegram, bot=None, log=Path("bot.log"))
        users.owed[7] = [bot_load.reply_to("When did we meet?")] * 2
        telegram.answer("sendMessage", {"chat_id": 7, "text": users.owed[7][0]})
        assert not users.answered(7)
        telegram.answer("sendMessage", {"chat_id": 7, "text": users.owed[7][1]})
        assert users.answered(7) and users.as_owed()


def test_chats_that_share_their_texts_have_them_encoded_once():
    inner = PairedEncoder()
    encoder = load.TextsEncodedOnce(inner)
    texts = ["My cat is called Miso.", "We went hiking."]
    first = encoder.encode(texts, every_language=False)
    assert np.allclose(first, inner.encode(texts, every_language=False), atol=1e-6)
    # What the interface defines is the wrapped encoder's too: the archive is built as without it.
    assert (encoder.collection_space, encoder.english_block) == (inner.collection_space, inner.english_block)
    query = inner.encode(["Where did we hike?"], query=True, every_language=False)[0]
    assert [space.name for space in encoder.spaces(query)] == [space.name for space in inner.spaces(query)]

    def encoded_again(*args, **kwargs):
        raise AssertionError("a passage was encoded twice")

    inner.encode = encoded_again
    assert np.array_equal(encoder.encode(texts[::-1], every_language=False), first[::-1])
    assert (encoder.name, encoder.record, encoder.dimensions) == (inner.name, inner.record, inner.dimensions)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_runs_every_section_and_writes_its_json(data_dir, tiny_locomo, tiny_pairs, tiny_longmemeval, tmp_path,
                                                     capsys, monkeypatch):
    monkeypatch.delenv(seed.ENV_VAR, raising=False)
    monkeypatch.setenv(implicit.ENV_VAR, str(tiny_pairs))
    monkeypatch.setenv(longmemeval.ENV_VAR, str(tiny_longmemeval))
    monkeypatch.setenv(realtalk.ENV_VAR, str(tmp_path / "absent.json"))  # measured in a test of its own
    out = tmp_path / "results"
    code = main(["bench", "--quick", "--sizes", str(SIZE), "--turns", str(TURNS), "--locomo", str(tiny_locomo),
                 "--out", str(out), "--bilingual"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert f"building archive-{SIZE}" in printed.err
    for name in SECTIONS:
        assert f"## {name}" in printed.out
        host = json.loads((out / f"{name}.json").read_text())["conditions"]["host"]
        assert all(ms > 0 for ms in host["reference_workload_ms"]) and 0 <= host["cpu_stolen_share"] < 1
    assert "| archive turns | chat | message |" in printed.out
    assert "| big chat | pre: read the checkpoint |" in printed.out
    heard = json.loads((out / "groups.json").read_text())["runs"]["heard"]  # every line said, kept
    assert heard["said"] == 2 * 5 * 10 and heard["lost_l2"] == heard["lost_l3"] == 0 and heard["reply_ms"]["n"] == 2

    overhead = json.loads((out / "overhead.json").read_text())
    archive = overhead["archives"][str(SIZE)]
    assert archive["turns"] == SIZE and archive["chats"] == len(layout(SIZE))
    for chat_layout in LAYOUTS:
        for kind in KINDS:
            cell = archive["cells"][chat_layout][kind]
            assert cell["total_ms"]["n"] == TURNS
            assert all(cell["nodes_ms"][node]["n"] == TURNS for node in NODES)
            # Each turn's phases add up to its time (so their means do), and the hooked calls were timed.
            for side in ("pre", "post"):
                phases = {name: d for name, d in cell["phases_ms"].items() if name.startswith(f"{side}: ")}
                assert all(d["n"] == TURNS for d in phases.values())
                assert sum(d["mean"] for d in phases.values()) == pytest.approx(cell[f"{side}_reply_ms"]["mean"], abs=0.1)
            assert all(cell["phases_ms"][name]["p50"] > 0 for name in (
                "pre: hold the chat", "pre: read the checkpoint", "post: write the checkpoints",
                "post: read the checkpoint again", "post: let the chat go"))
    assert (out / "overhead.png").read_bytes().startswith(PNG_MAGIC)
    bilingual = overhead["bilingual_archives"][str(SIZE)]
    assert all(bilingual["cells"][chat_layout][kind]["total_ms"]["n"] == TURNS
               for chat_layout in LAYOUTS for kind in KINDS)
    assert f"| {SIZE}, bilingual | big chat" in printed.out
    said = archived_texts(data_dir / "bench" / f"{ARCHIVE}-bilingual")
    assert any(CYRILLIC.search(text) for text in said) and any("ñ" in text or "á" in text for text in said)

    deadline = json.loads((out / "deadline.json").read_text())
    assert deadline["deadline_ms"] == pytest.approx(250)
    assert deadline["all"]["turns"] == len(deadline["turns"]) == TURNS * len(LAYOUTS) * len(KINDS)
    assert (out / "deadline.png").read_bytes().startswith(PNG_MAGIC)

    imported = json.loads((out / "import.json").read_text())
    assert imported["imported"] == imported["turns"] == 30  # --quick's count
    assert imported["turns_per_s"] > 0 and imported["encoder_resident_mb"] > 10  # the encoder's weights

    quality = json.loads((out / "locomo.json").read_text())
    [record] = locomo.load(tiny_locomo)
    assert quality["questions"] == len(locomo.build_conversation(record).answerable())
    assert list(quality["methods"]) == methods(1200)
    assert quality["off_topic"]["messages"] == len(OFF_TOPIC)
    for question in quality["per_question"]:
        goat, same = question["methods"]["GOAT prefetch"], question["methods"]["top-k at GOAT's tokens"]
        assert same["tokens"] <= goat["tokens"] <= 1200
        assert all(0.0 <= m["recall"] <= 1.0 for m in question["methods"].values())

    bearings = json.loads((out / "implicit.json").read_text())
    assert [row["pair"] for row in bearings["per_trigger"]] == list(range(len(TINY_PAIRS)))
    assert {half: groups["all"]["triggers"] for half, groups in bearings["halves"].items()} == {
        "tuning": 2, "held-back": 2}
    assert bearings["off_topic"]["messages"] == len(OFF_TOPIC)
    assert "| held-back | all | 2 |" in printed.out

    assistant = json.loads((out / "longmemeval.json").read_text())
    assert [(row["half"], row["methods"]["GOAT prefetch"]["recall"]) for row in assistant["per_question"]] == [
        ("tuning", 1.0), ("held-back", 1.0)]  # the reply's one sentence that answers, in an excerpt
    assert assistant["off_topic"]["messages"] == 2 * longmemeval.OFF_TOPIC_PER_CHAT

    checkpoint = json.loads((out / "checkpoint.json").read_text())
    kept, unbounded = checkpoint["runs"]
    assert kept["turns"] == unbounded["turns"] == 10  # --quick's count
    assert kept["keep_turns"] == DEFAULT_KEEP_TURNS and unbounded["keep_turns"] is None
    assert kept["checkpoints_kept"] < unbounded["checkpoints_kept"]

    servers = json.loads((out / "servers.json").read_text())["archives"][str(SIZE)]
    assert servers["redis_url"].startswith("redis://127.0.0.1:") and servers["chroma_url"].startswith("http://127.0.0.1:")
    for deployment in ("embedded", "servers"):
        for chat_layout in LAYOUTS:
            assert all(servers["cells"][deployment][chat_layout][kind]["total_ms"]["n"] == TURNS for kind in KINDS)

    facts = json.loads((out / "facts.json").read_text())
    assert list(facts["runs"]) == ["redis"] and facts["runs"]["redis"]["load_identity_ms"]["n"] == TURNS
    assert "| letta | not run: set GOAT_LETTA_URL |" in printed.out
    assert "seed: skipped: set GOAT_SEED_DIR to a tree of the seed" in printed.out
    assert json.loads((out / "seed.json").read_text())["skipped"].startswith("skipped: set GOAT_SEED_DIR")

    assert list(json.loads((out / "load.json").read_text())["by_chats"]) == ["1", "3"]  # --quick's counts

    # The measured turns ran on a throw-away copy: the cached archive holds exactly what was built.
    cached = data_dir / "bench" / ARCHIVE
    assert archived_turns(cached) == {plan.chat_id: plan.turns for plan in layout(SIZE)}
    assert not (data_dir / "bench" / "scratch").exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_interrupted_archive_build_resumes_without_duplicates(data_dir, tiny_locomo, capsys):
    arguments = ["bench", "--build-only", "--sizes", str(SIZE), "--locomo", str(tiny_locomo)]
    assert main(arguments) == 0
    archive = data_dir / "bench" / ARCHIVE
    manifest = json.loads((archive / "manifest.json").read_text())
    assert manifest["complete"]
    assert asyncio.run(word_indexed_turns(archive)) == {plan.chat_id: plan.turns for plan in layout(SIZE)}

    capsys.readouterr()
    assert main(arguments) == 0  # complete: reused as it is
    assert "building" not in capsys.readouterr().err

    (archive / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))  # as if cut short
    assert main(arguments) == 0
    assert "building" in capsys.readouterr().err
    assert json.loads((archive / "manifest.json").read_text())["complete"]
    assert archived_turns(archive) == {plan.chat_id: plan.turns for plan in layout(SIZE)}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_archive_of_other_texts_is_kept_unless_rebuild_is_asked(data_dir, tiny_locomo, capsys):
    assert main(["bench", "--build-only", "--sizes", str(SIZE), "--locomo", str(tiny_locomo)]) == 0
    archive = data_dir / "bench" / ARCHIVE
    built = (archive / "manifest.json").read_text()
    other_texts = ["bench", "--build-only", "--sizes", str(SIZE), "--locomo", str(locomo.SYNTHETIC_PATH)]

    capsys.readouterr()
    assert main(other_texts) == 2
    assert "built from other texts, another layout or format" in capsys.readouterr().err
    assert (archive / "manifest.json").read_text() == built

    assert main([*other_texts, "--rebuild"]) == 0
    rebuilt = json.loads((archive / "manifest.json").read_text())
    assert rebuilt["complete"] and rebuilt["spec"]["texts"] != json.loads(built)["spec"]["texts"]
    assert archived_turns(archive) == {plan.chat_id: plan.turns for plan in layout(SIZE)}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--sections", "overhead,nope"], "unknown section(s) nope"),
        (["--sizes", "1000,lots"], "expected comma-separated turn counts"),
        (["--turns", "0"], "expected a positive whole number"),
        (["--encoders", "minilm-l6,bert"], "unknown encoder(s) bert; choose from minilm-l6,e5-small"),
    ],
)
def test_bad_options_are_refused_before_any_work(arguments, message, data_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *arguments])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not data_dir.exists()


def test_a_missing_locomo_file_is_refused_before_any_work(data_dir, tmp_path, capsys):
    assert main(["bench", "--locomo", str(tmp_path / "missing.json")]) == 2
    assert "no such LoCoMo file" in capsys.readouterr().err
    assert not data_dir.exists()


def test_archive_layout_puts_most_turns_in_one_chat_and_labels_every_chat():
    plans = layout(10_000)
    assert sum(plan.turns for plan in plans) == 10_000
    assert plans[0].turns == 8_000 and all(plan.turns == 100 for plan in plans[1:])
    starts = [plan.first for plan in plans]
    assert starts == sorted(starts) and all(a.first + a.turns == b.first for a, b in zip(plans, plans[1:]))
    keys = [key for plan in plans for key in plan.keys()]
    assert all(plan.keys() for plan in plans)
    assert len(keys) == len(set(keys))  # a label names one turn of the whole archive


def test_the_bilingual_section_reads_each_text_of_its_chats_once_and_measures_the_libraries_memory(tiny_locomo):
    told = [conversations(record)[1] for record in locomo.load(tiny_locomo)]
    reading = bilingual.language_reading(told)
    texts = sum(len(chat.messages) + len(chat.questions) for chat in told) + sum(map(len, ASKED.values()))
    assert reading["microseconds"]["n"] == texts
    assert reading["libraries_mb"] > 0  # CLD2's tables and fastText's model, loaded at first use
    assert "| texts read | p50 per text |" in bilingual.reading_table(reading)


def test_a_bilingual_archive_differs_from_the_english_one_only_in_its_other_language_turns():
    records = locomo.load(locomo.SYNTHETIC_PATH)
    english, bilingual = TextPool(records), TextPool(records, bilingual=True)
    plan = layout(10_000)[0]
    other = [position for position in range(200) if english.turn(plan, position) != bilingual.turn(plan, position)]
    assert other == list(range(OTHER_LANGUAGE_AT, 200, OTHER_LANGUAGE_EVERY))
    said = [bilingual.turn(plan, position)[0] for position in other]
    assert all(text.startswith(tuple(line for _, line, _ in LINES)) for text in said)
    assert any(CYRILLIC.search(text) for text in said) and any(not CYRILLIC.search(text) for text in said)
    assert all(key in bilingual.turn(plan, position)[0] for position in range(0, 200, KEY_EVERY)
               if (key := plan.key_of(position)))  # labelled turns stay English, labels and all


def test_each_kind_of_message_carries_what_its_mechanism_looks_for():
    pool = TextPool(locomo.load(locomo.SYNTHETIC_PATH))
    plans = layout(SIZE)
    when = datetime.fromtimestamp(next(turn_times()), timezone.utc)
    for chats in (plans[:1], plans[1:]):
        temporal = [text for _, (_, text) in zip(range(20), messages("temporal", chats, pool))]
        assert all(completed_past_range(text, when) for text in temporal)
        specific = [(chat, text) for _, (chat, text) in zip(range(20), messages("specific_key", chats, pool))]
        held = {plan.chat_id: set(plan.keys()) for plan in chats}
        assert all(set(structural_keys(text)) <= held[chat] and structural_keys(text) for chat, text in specific)


def test_the_seed_side_by_side_runs_only_on_a_tree_of_the_seed(tmp_path, monkeypatch):
    monkeypatch.delenv(seed.ENV_VAR, raising=False)
    assert seed.seed_tree() is None
    monkeypatch.setenv(seed.ENV_VAR, str(tmp_path))  # a folder, but not the seed's
    assert seed.seed_tree() is None
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "layers.py").write_text("")
    (tmp_path / "orchestrator").mkdir()
    assert seed.seed_tree() == tmp_path
