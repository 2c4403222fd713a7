"""Hybrid retrieval: the word index in real Redis, the background against real Chroma and MiniLM,
and what the graph injects with them (relevance against the chat's background, fused lists)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio

from bot.report import render_report
from graph.importing.importer import import_transcript
from graph.checkpoint import CheckpointedServices
from graph.runner import TurnRunner
from graph.observability.why_report import turn_report
from graph.settings import Settings, load_settings
from memory.settings import SettingsError
from memory.encoders.embeddings import LocalEmbeddings
from memory.encoders.encoder import Space, distances
from memory.facade import Memory, measurement_hooks
from memory.prompt import format_recall_line
from memory.retrieval.finding.scale import FEWEST_FOR_A_BACKGROUND, Scale
from memory.retrieval.finding.search import L3Reads
from memory.turns import Exchange, archive_id
from memory.stores.entry_index import EntryIndex, IndexEntry
from memory.stores.lexical import K1, LexicalIndex
from memory.words import Words, terms
from memory.stores.index_migration import INDEX_SCHEME_KEY
from memory.stores.archive_encoder import REEMBED_KEY
from memory.stores.redis_backend import PREFIX, cache_scope_key

NOW = datetime(2026, 11, 21, 15, 0, tzinfo=timezone.utc)


# ---------------------------------------------------------------- the word index


@pytest.fixture(params=["embedded", pytest.param("cluster", marks=pytest.mark.slow)])
async def raw_redis(request: pytest.FixtureRequest):
    """The embedded server, and a 3-master Redis Cluster (each chat's keys share one slot)."""
    if request.param == "cluster":
        client = redis.asyncio.RedisCluster.from_url(request.getfixturevalue("cluster_url"))
        await client.initialize()  # its slots learnt before concurrent use (see graph/checkpoint/batching.py)
    else:  # bytes: postings are binary
        client = redis.asyncio.Redis.from_url(request.getfixturevalue("redis_url"))
    yield client
    await client.aclose()


@pytest.fixture
async def embedded_raw_redis(redis_url: str):
    """The embedded server the ``runner`` fixture's memory lives on (bytes: postings are binary)."""
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def vector(*values: float) -> list[float]:
    return list(values)


def single_term_score(entries: int, df: int, count: int = 1) -> float:
    idf = np.log1p((entries - df + 0.5) / (df + 0.5))
    return float(idf * count * (K1 + 1) / (count + K1))


DOCS = [
    ("e1", "user: we adopted a puppy called Biscuit\nassistant: lovely name", vector(1, 0, 0)),
    ("e2", "user: the deploy failed again\nassistant: check the migration", vector(0, 1, 0)),
    ("e3", "user: Biscuit chewed my shoe, Biscuit!\nassistant: puppies do that", vector(0, 0, 1)),
    ("e4", "user: booked flights to Rome\nassistant: enjoy the trip", vector(1, 1, 0)),
    ("e5", "user: risotto came out gluey\nassistant: stir less", vector(0, 1, 1)),
]


def test_terms_fold_case_and_diacritics() -> None:
    assert terms("Când AM fost la Brașov? e-mail_2, ȘI ţara") == ["cand", "am", "fost", "la", "brasov", "e",
                                                                  "mail_2", "si", "tara"]
    assert terms("?! …") == []


def test_words_fold_endings_by_the_chosen_language() -> None:
    assert Words("english")("She visited Rome; her visits to Rome, ticket-000250") == [
        "she", "visit", "rome", "her", "visit", "to", "rome", "ticket", "000250"]
    assert Words("romanian")("Când am vizitat Brașovul cu prietenii") == Words("romanian")(
        "cand am vizitat brasovul cu prietenii")  # as people type it without diacritics
    assert Words("none")("She visited Rome") == terms("She visited Rome") == ["she", "visited", "rome"]
    assert Settings().words.stemmer == "auto"
    assert load_settings(environ={"GOAT_WORDS__STEMMER": "french"}).words.stemmer == "french"
    with pytest.raises(SettingsError, match="words.stemmer.*unknown stemmer 'klingon'"):
        load_settings(environ={"GOAT_WORDS__STEMMER": "klingon"})


async def test_a_word_finds_the_entries_holding_another_form_of_it(raw_redis) -> None:
    stemmed, whole = LexicalIndex(raw_redis, "a"), LexicalIndex(raw_redis, "b", Words("none"))
    for index in (stemmed, whole):
        await index.add("chat", DOCS)
    # e3 says "puppies", e1 "puppy": one stem; kept whole, the plural finds only itself.
    assert {e for e, _ in await scored(stemmed, "chat", "puppies", k=10, max_df_share=0.5)} == {"e1", "e3"}
    assert {e for e, _ in await scored(whole, "chat", "puppies", k=10, max_df_share=0.5)} == {"e3"}
    assert {e for e, _ in await scored(stemmed, "chat", "booking flight", k=10, max_df_share=0.5)} == {"e4"}
    assert await scored(whole, "chat", "booking flight", k=10, max_df_share=0.5) == []


async def scored(index: LexicalIndex, chat_id: str, query: str, **options) -> list[tuple[str, float]]:
    """The word search's (id, score) pairs; its vectors are checked through L3Reads.lexical_search."""
    return [(entry_id, score) for entry_id, score, _ in await index.search(chat_id, query, **options)]


async def test_a_rare_shared_word_ranks_its_entries_by_bm25(raw_redis) -> None:
    index = LexicalIndex(raw_redis)
    assert await index.add("chat", DOCS) == 5
    found = await scored(index, "chat", "Where is Biscuit?", k=10, max_df_share=0.5)
    assert [entry_id for entry_id, _ in found] == ["e3", "e1"]  # twice beats once
    assert found[0][1] == pytest.approx(single_term_score(5, df=2, count=2), rel=1e-6)
    assert found[1][1] == pytest.approx(single_term_score(5, df=2, count=1), rel=1e-6)
    assert await scored(index, "chat", "biscuit", k=1, max_df_share=0.5) == found[:1]
    assert await scored(index, "chat", "?!", k=10) == [] and await scored(index, "chat", "Biscuit", k=0) == []
    assert await scored(index, "other-chat", "Biscuit", k=10) == []


async def test_words_in_too_many_entries_are_skipped(raw_redis) -> None:
    index = LexicalIndex(raw_redis)
    await index.add("chat", DOCS)
    assert await scored(index, "chat", "user assistant", k=10, max_df_share=0.5) == []  # in all 5
    assert len(await scored(index, "chat", "user", k=10, max_df_share=1.0)) == 5
    # At least one entry is always allowed, so a tiny chat can still be searched.
    await index.add("tiny", DOCS[:1])
    assert [e for e, _ in await scored(index, "tiny", "puppy", k=10, max_df_share=0.1)] == ["e1"]


async def test_adding_again_changes_nothing(raw_redis) -> None:
    index = LexicalIndex(raw_redis)
    await index.add("chat", DOCS)
    before = await scored(index, "chat", "puppy Biscuit Rome", k=10, max_df_share=0.5)
    centroid = (await index.entries.centroid(["chat"])).mean
    assert await index.add("chat", DOCS + [DOCS[0]]) == 0
    assert await scored(index, "chat", "puppy Biscuit Rome", k=10, max_df_share=0.5) == before
    assert np.array_equal((await index.entries.centroid(["chat"])).mean, centroid)
    assert await index.entries.missing("chat", ["e1", "e9", "e9", "e2"]) == ["e9"]


async def test_concurrent_adds_of_the_same_entries_index_each_once(redis_url: str) -> None:
    clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(4)]
    try:
        indexes = [LexicalIndex(client) for client in clients]
        added = await asyncio.gather(*(index.add("chat", DOCS) for index in indexes))
        assert sum(added) == len(DOCS)
        found = dict(await scored(indexes[0], "chat", "Rome", k=10, max_df_share=1.0))
        assert found == {"e4": pytest.approx(single_term_score(5, df=1))}  # one posting, not four
        expected = np.mean([np.asarray(v, dtype=float) for _, _, v in DOCS], axis=0)
        assert np.allclose((await indexes[0].entries.centroid(["chat"])).mean, expected)
    finally:
        for client in clients:
            await client.aclose()


async def test_the_centroid_is_the_mean_vector_over_the_chats(raw_redis) -> None:
    index = LexicalIndex(raw_redis)
    assert await index.entries.centroid(["chat"]) is None
    await index.add("a", [("x", "one", vector(1, 0)), ("y", "two", vector(0, 1))])
    await index.add("b", [("z", "three", vector(1, 1))])
    assert np.allclose((await index.entries.centroid(["a"])).mean, [0.5, 0.5])
    assert np.allclose((await index.entries.centroid(["a", "b", "nobody"])).mean, [2 / 3, 2 / 3])  # weighted by entries


async def test_a_removed_entry_is_gone_from_the_words_the_times_and_the_centroid(raw_redis) -> None:
    index = LexicalIndex(raw_redis)
    await index.add("chat", [(entry_id, content, vector_, float(n)) for n, (entry_id, content, vector_) in enumerate(DOCS)])
    _, content, removed_vector = DOCS[2]
    assert await index.remove("chat", "e3", content, removed_vector)
    assert not await index.remove("chat", "e3", content, removed_vector)  # once
    # BM25 counts the entries left: "Biscuit" is now in one of four.
    assert dict(await scored(index, "chat", "Biscuit", k=10, max_df_share=1.0)) == {
        "e1": pytest.approx(single_term_score(4, df=1))}
    assert len(await index.holding_every_word("chat", "shoe", 10)) == 0
    kept = np.mean([v for e, _, v in DOCS if e != "e3"], axis=0)
    assert np.allclose((await index.entries.centroid(["chat"])).mean, kept)
    numbers, _ = await index.entries.newest("chat", 10)
    assert await index.entries.ids("chat", numbers) == ["e5", "e4", "e2", "e1"]
    assert await index.entries.missing("chat", ["e3"]) == ["e3"]


async def test_entries_are_paged_newest_first_each_once(raw_redis) -> None:
    index = LexicalIndex(raw_redis)
    # Twelve entries of one time (numbered past 9: Redis orders them as text) between two others.
    await index.add("chat", [("last", "x", vector(1), 300.0), *((f"same-{n}", "x", vector(1), 200.0) for n in range(12)),
                             ("first", "x", vector(1), 100.0)])

    async def pages(size: int) -> list[list[str | None]]:
        found, cursor = [], None
        while True:
            numbers, cursor = await index.entries.newest("chat", size, cursor)
            found.append(await index.entries.ids("chat", numbers))
            if cursor is None:
                return found

    every = [entry_id for page in await pages(14) for entry_id in page]
    assert every[0] == "last" and every[-1] == "first" and sorted(every[1:-1]) == sorted(f"same-{n}" for n in range(12))
    for size in (1, 5, 13):
        paged = await pages(size)
        assert [entry_id for page in paged for entry_id in page] == every and all(len(page) == size for page in paged[:-1])
    for cursor in ("yesterday", "200.0/", "nan/3", "200/x"):
        with pytest.raises(ValueError, match="is not one a page of memories gave"):
            await index.entries.newest("chat", 5, cursor)


async def test_drop_forgets_the_chat_and_only_it(raw_redis) -> None:
    index = LexicalIndex(raw_redis)
    await index.add("gone", DOCS)
    assert await index.advance_turns_indexed("gone", range(1, 6)) == 5
    await index.add("kept", DOCS)
    await index.entries.drop("gone")
    assert await scored(index, "gone", "Biscuit", k=10, max_df_share=1.0) == []
    assert await index.entries.centroid(["gone"]) is None and await index.indexed_turns("gone") == 0
    assert await index.entries.missing("gone", ["e1"]) == ["e1"]
    assert len(await scored(index, "kept", "Biscuit", k=10, max_df_share=1.0)) == 2


async def test_a_chats_vectors_span_several_strings_read_as_one(raw_redis) -> None:
    """A Redis string holds at most 512 MB (~230 000 of a paired encoder's vectors): a chat's
    vectors go ``rows_per_key`` a string, and every read finds them across strings as in one;
    the first string keeps the key an index always had."""
    entries = EntryIndex(raw_redis, "spread", dimensions=2, rows_per_key=3)
    given = [IndexEntry(f"e{n}", "x", [n, -n], float(n)) for n in range(8)]
    numbered = await entries.claim("chat", given, {})
    async with raw_redis.pipeline(transaction=False) as pipe:
        entries.write(pipe, "chat", numbered, np.array([entry.vector for entry, _ in numbered]))
        await pipe.execute()
    assert await raw_redis.exists(entries.key("chat", "vectors"), entries.key("chat", "vectors:1"),
                                  entries.key("chat", "vectors:2")) == 3
    expected = np.array([[n, -n] for n in range(8)], dtype=np.float32)
    assert np.array_equal(await entries.vectors("chat", range(8)), expected)  # one slice over three strings
    assert np.array_equal(await entries.vectors("chat", range(2, 5)), expected[2:5])
    assert np.array_equal(await entries.vectors("chat", [7, 0, 4]), expected[[7, 0, 4]])  # gathered
    ids, vectors = await entries.ids_and_vectors("chat", [6, 1, 9])
    assert ids == ["e6", "e1", None] and np.array_equal(vectors, np.array([[6, -6], [1, -1], [0, 0]]))
    await entries.clear_vectors("chat")
    assert not np.any(await entries.vectors("chat", range(8)))
    assert await raw_redis.exists(entries.key("chat", "vectors:2")) == 0


# ---------------------------------------------------------------- through the memory façade

# (days before NOW, user, assistant)
HISTORY = [
    (30, "I planted three San Marzano tomato seedlings on the balcony.", "Give them a deep pot and full sun."),
    (29, "The deployment of service alpha-5675 failed on the database migration.", "Run the migration in batches."),
    (28, "My neighbour's parrot Zorblax screams every morning at six.", "Parrots are loud at dawn; try a cover."),
    (27, "Can you recommend a sci-fi movie for tonight?", "Try Arrival; it is thoughtful."),
    (26, "It has been raining all week here.", "Good weather for reading."),
    (25, "I ran 8 kilometres this morning, my knee feels fine.", "Keep the long runs slow for a while."),
    (24, "My manager wants the quarterly report by Friday.", "Draft the charts first."),
    (23, "I am thinking of learning Italian before the trip.", "A daily 15-minute app session helps."),
    (22, "Our team adopted a new code review checklist.", "Keep it short so people use it."),
    (21, "I need a gift idea for my dad, he likes woodworking.", "A Japanese pull saw."),
    (20, "The office coffee machine broke again.", "Maybe a team French press."),
    (19, "My sister Clara is getting married in Porto in June.", "June in Porto is lovely."),
    (18, "I tried a mushroom risotto and it came out gluey.", "Add the stock gradually."),
    (17, "The tomatoes have their first flowers now.", "Pinch the suckers below the first cluster."),
    (16, "We rolled alpha-5675 back to version 2.3.1.", "Keep 2.3.1 pinned until the migration is split."),
    (15, "I started reading Dune again.", "The appendices are worth it."),
]


def history_jsonl(chat_id: str, history: list[tuple[int, str, str]] = HISTORY) -> str:
    lines = []
    for n, (days, user, assistant) in enumerate(history):
        when = NOW - timedelta(days=days) + timedelta(minutes=n)
        for offset, role, content in ((0, "user", user), (1, "assistant", assistant)):
            lines.append(json.dumps({"chat_id": chat_id, "user_id": "alice", "role": role, "content": content,
                                     "timestamp": (when + timedelta(seconds=offset)).isoformat()}))
    return "\n".join(lines) + "\n"


async def load(memory: Memory, tmp_path: Path, chat_id: str, history=HISTORY) -> None:
    path = tmp_path / f"{chat_id}.jsonl"
    path.write_text(history_jsonl(chat_id, history), encoding="utf-8")
    await import_transcript(memory, path)


@pytest.fixture
async def runner(settings: Settings, embeddings: LocalEmbeddings):
    runner = TurnRunner(CheckpointedServices(settings, Memory(settings, embeddings=embeddings)))
    await runner.services.memory.connect(warm=True)
    yield runner
    await runner.aclose()


async def inspect(runner: TurnRunner, chat_id: str, message: str, **kwargs) -> dict:
    return turn_report(await runner.inspect(chat_id, message, now=NOW.timestamp(), **kwargs))


async def test_the_writer_catches_a_chats_word_index_up_with_its_archived_turns(runner, tmp_path) -> None:
    memory = runner.services.memory
    index = await memory._backends.redis.lexical_index()
    await load(memory, tmp_path, "small")
    assert await index.indexed_turns("small") == len(HISTORY)  # the import indexed what it archived
    assert await index.entries.missing("small", [archive_id("small", n) for n in range(1, len(HISTORY) + 1)]) == []

    long_history = [(40 - i / 10, f"note number {i} about topic {i % 7}", "noted") for i in range(150)]
    await load(memory, tmp_path, "big", long_history)
    await memory._archiver.indexer.forget_index("big")  # as if another process had archived without indexing
    assert await index.indexed_turns("big") == 0
    await memory._archiver.indexer.sync_index(["big"])
    assert await index.indexed_turns("big") == 150
    found = await memory._finding.reads.lexical_search(["big"], "note 149", k=3, max_df_share=0.1)
    assert found[0][0]["id"] == archive_id("big", 150)


async def as_an_older_version_left_it(memory: Memory, raw: redis.asyncio.Redis, chat_id: str) -> None:
    """The chat's word index as a version before stemming wrote it (words kept whole, no
    "words" mark), without the mark that every chat's index was brought to this scheme."""
    index = await memory._backends.redis.entry_index()
    store = await memory._backends.l3.episodic()
    entries = store.entries(chat_id)
    await index.drop(chat_id)
    older = LexicalIndex(raw, PREFIX, Words("none"))
    await older.add(chat_id, [(hit["id"], hit["content"], vector, hit["timestamp"])
                              for hit, vector in store.get_with_vectors([chat_id], [e["id"] for e in entries])])
    await older.advance_turns_indexed(chat_id, range(1, len(entries) + 1))
    await raw.hdel(older.entries.key(chat_id, "meta"), "words")
    await raw.delete(INDEX_SCHEME_KEY)


async def test_an_index_of_words_folded_otherwise_is_indexed_afresh(runner, tmp_path, embedded_raw_redis) -> None:
    """An index written before stemming misses "plant" in "I planted…": the chat is indexed
    again, then found by any form."""
    memory = runner.services.memory
    index = await memory._backends.redis.lexical_index()
    await load(memory, tmp_path, "chat")
    ids = [archive_id("chat", n) for n in range(1, len(HISTORY) + 1)]
    await as_an_older_version_left_it(memory, embedded_raw_redis, "chat")
    assert await index.outdated("chat") and await index.indexed_turns("chat") == 0
    assert await memory._finding.reads.lexical_search(["chat"], "plant", k=3, max_df_share=0.1) == []

    await memory._archiver.indexer.sync_index(["chat"])
    assert not await index.outdated("chat") and await index.indexed_turns("chat") == len(HISTORY)
    [(hit, _, _)] = await memory._finding.reads.lexical_search(["chat"], "plant", k=3, max_df_share=0.1)
    assert hit["id"] == archive_id("chat", 1)
    assert await index.entries.missing("chat", ids) == []


async def test_an_archive_left_by_an_older_version_is_migrated_when_memory_connects(
    runner, settings, embeddings, tmp_path, embedded_raw_redis, caplog
) -> None:
    memory = runner.services.memory
    await load(memory, tmp_path, "chat")
    await load(memory, tmp_path, "behind", [(5, "Our cat Mittens learned to open doors.", "Clever cat.")])
    await load(memory, tmp_path, "current", [(5, "The boiler was serviced on Monday.", "Good.")])
    await as_an_older_version_left_it(memory, embedded_raw_redis, "chat")
    await memory._archiver.indexer.forget_index("behind")  # archived, never indexed
    store = await memory._backends.l3.episodic()

    later = Memory(settings, embeddings=embeddings, episodic=store)  # the next process on this archive
    try:
        with caplog.at_level("WARNING", logger="memory.stores.index_migration"):
            await later.connect()
        said = [record.getMessage() for record in caplog.records if record.name == "memory.stores.index_migration"]
        assert said[0].startswith("bringing the word index of up to 2 of 3 archived chat(s) up to date")
        assert said[-1].startswith("word index: 2 of 2 chat(s) done")
        index = await later._backends.redis.lexical_index()
        assert not await index.outdated("chat") and await index.indexed_turns("chat") == len(HISTORY)
        assert await index.indexed_turns("behind") == 1
        [(hit, _, _)] = await later._finding.reads.lexical_search(["chat"], "plant", k=3, max_df_share=0.1)
        assert hit["id"] == archive_id("chat", 1)
        [(hit, _, _)] = await later._finding.reads.lexical_search(["behind"], "Mittens", k=3, max_df_share=1.0)
        assert hit["id"] == archive_id("behind", 1)

        # Marked as done: the process after it reads the mark and looks at no chat.
        caplog.clear()
        await memory._archiver.indexer.forget_index("behind")
        last = Memory(settings, embeddings=embeddings, episodic=store)
        with caplog.at_level("WARNING", logger="memory.stores.index_migration"):
            await last.connect()
        await last.aclose()
        assert not [record for record in caplog.records if record.name == "memory.stores.index_migration"]
        assert await index.indexed_turns("behind") == 0
    finally:
        await later.aclose()


async def test_processes_starting_together_migrate_once(runner, settings, embeddings, tmp_path, embedded_raw_redis,
                                                        caplog) -> None:
    memory = runner.services.memory
    await load(memory, tmp_path, "chat")
    await as_an_older_version_left_it(memory, embedded_raw_redis, "chat")
    store = await memory._backends.l3.episodic()
    workers = [Memory(settings, embeddings=embeddings, episodic=store) for _ in range(3)]
    try:
        with caplog.at_level("WARNING", logger="memory.stores.index_migration"):
            await asyncio.gather(*(worker.connect() for worker in workers))
        said = [record.getMessage() for record in caplog.records if record.name == "memory.stores.index_migration"]
        assert len([line for line in said if line.startswith("bringing the word index")]) == 1, said
        index = await memory._backends.redis.lexical_index()
        assert not await index.outdated("chat") and await index.indexed_turns("chat") == len(HISTORY)
    finally:
        for worker in workers:
            await worker.aclose()


async def test_a_migration_l3_breaks_off_costs_no_start_and_is_done_at_the_next_write(
    runner, settings, embeddings, tmp_path, embedded_raw_redis, caplog, monkeypatch
) -> None:
    memory = runner.services.memory
    await load(memory, tmp_path, "chat")
    await as_an_older_version_left_it(memory, embedded_raw_redis, "chat")
    store = await memory._backends.l3.episodic()

    def gone() -> list[str]:
        raise ConnectionError("the Chroma server went away")

    later = Memory(settings, embeddings=embeddings, episodic=store)
    try:
        with monkeypatch.context() as patched, caplog.at_level("WARNING", logger="memory.stores.index_migration"):
            patched.setattr(store, "chat_ids", gone)
            await later.connect()  # Redis answers: the process starts
        assert any("not brought up to date (ConnectionError: the Chroma server went away)" in record.getMessage()
                   for record in caplog.records)
        index = await later._backends.redis.lexical_index()
        assert await index.outdated("chat")
        assert await measurement_hooks(later).settle() == 0  # the next write finishes it
        assert not await index.outdated("chat") and await index.indexed_turns("chat") == len(HISTORY)
    finally:
        await later.aclose()


async def test_a_chat_of_saved_memories_alone_is_migrated_too(runner, settings, embeddings, embedded_raw_redis) -> None:
    """No turn count tells such a chat's index apart: it is indexed from what Chroma holds."""
    memory = runner.services.memory
    entry_id = await memory.scope("notes", "alice", now=NOW.timestamp()).store(
        "The spare key is under the blue flowerpot.")
    await memory._archiver.indexer.forget_index("notes")  # as if an older version had kept no index of it
    await embedded_raw_redis.delete(INDEX_SCHEME_KEY)
    later = Memory(settings, embeddings=embeddings, episodic=await memory._backends.l3.episodic())
    try:
        await later.connect()
        [(hit, _, _)] = await later._finding.reads.lexical_search(["notes"], "flowerpot", k=3, max_df_share=1.0)
        assert hit["id"] == entry_id
    finally:
        await later.aclose()


async def test_no_migration_runs_while_a_reembedding_is_unfinished(runner, settings, embeddings, tmp_path,
                                                                   embedded_raw_redis, caplog) -> None:
    """Its vectors would be copied half re-embedded: the migration waits for the re-embedding."""
    memory = runner.services.memory
    await load(memory, tmp_path, "chat")
    await as_an_older_version_left_it(memory, embedded_raw_redis, "chat")
    await embedded_raw_redis.hset(REEMBED_KEY, "to", "e5-small")
    later = Memory(settings, embeddings=embeddings, episodic=await memory._backends.l3.episodic())
    try:
        with caplog.at_level("WARNING", logger="memory.stores.index_migration"):
            assert await later._archiver.migration.bring_index_current() is False
        assert any("once the re-embedding has finished" in record.getMessage() for record in caplog.records)
        index = await later._backends.redis.lexical_index()
        assert await index.outdated("chat") and await embedded_raw_redis.get(INDEX_SCHEME_KEY) is None
        await embedded_raw_redis.delete(REEMBED_KEY)  # the re-embedding finished
        assert await later._archiver.migration.bring_index_current() is True
        assert not await index.outdated("chat") and await index.indexed_turns("chat") == len(HISTORY)
    finally:
        await later.aclose()


async def test_a_process_that_never_connects_migrates_before_its_first_write(
    runner, settings, embeddings, tmp_path, embedded_raw_redis
) -> None:
    """The LangGraph server never calls connect(): its archiver brings the index up to date
    before it writes the first turn."""
    memory = runner.services.memory
    await load(memory, tmp_path, "chat")
    await as_an_older_version_left_it(memory, embedded_raw_redis, "chat")
    server = Memory(settings, embeddings=embeddings, episodic=await memory._backends.l3.episodic())
    try:
        await server._archiver.later([Exchange("another", "u1", 1, NOW.timestamp(), "hello", "hi")], NOW.timestamp())
        assert await measurement_hooks(server).settle() == 0
        index = await server._backends.redis.lexical_index()
        assert not await index.outdated("chat") and await index.indexed_turns("chat") == len(HISTORY)
        assert await index.indexed_turns("another") == 1
    finally:
        await server.aclose()


async def test_the_background_is_the_mean_distance_to_the_chats_entries(runner, tmp_path) -> None:
    memory = runner.services.memory
    await load(memory, tmp_path, "chat")
    await memory._archiver.indexer.sync_index(["chat"])
    scale = await memory._finding.ahead.measure("how are my tomatoes doing?", ["chat"])
    store = await memory._backends.l3.episodic()
    stored = store.get_with_vectors(["chat"], [archive_id("chat", n) for n in range(1, len(HISTORY) + 1)])
    exact = np.mean(distances(np.array([v for _, v in stored]), scale.reference.query))
    assert scale.backgrounds[scale.reference.name] == pytest.approx(exact, abs=1e-5)
    assert scale.passages[scale.reference.name] == len(HISTORY)
    # A mean of too few passages is no background yet: the gap test decides.
    assert scale.background == (pytest.approx(exact, abs=1e-5) if len(HISTORY) >= FEWEST_FOR_A_BACKGROUND else None)
    assert (await memory._finding.ahead.measure("how are my tomatoes doing?", ["nobody"])).background is None


async def test_a_new_chats_only_turn_is_recalled_for_a_question_about_it(runner) -> None:
    """Against a background that is the mean of one passage, that passage could never stand
    out: until a chat holds enough for one, the gap test and its ceiling decide."""
    memory = runner.services.memory
    await memory.archive([Exchange("new-chat", "erin", 1, 1_700_000_000.0, "My cat is called Miso.", "A lovely name.")],
                         1_700_000_000.0)
    assert await measurement_hooks(memory).settle() == 0
    for question, recalled in (("what is my cat called?", True), ("how far is the Moon from the Earth?", False)):
        state = await runner.inspect("new-chat", question, user_id="erin", now=1_700_000_100.0)
        assert state["prefetch"]["background"] is None
        assert [r["id"] for r in state["l3"]] == ([archive_id("new-chat", 1)] if recalled else [])


async def test_forgetting_a_chat_forgets_its_words(runner, tmp_path) -> None:
    memory = runner.services.memory
    await load(memory, tmp_path, "chat")
    await memory._archiver.indexer.sync_index(["chat"])
    assert await memory._finding.reads.lexical_search(["chat"], "Zorblax", k=5, max_df_share=0.1)
    await memory.admin.forget_chat("chat")
    assert await memory._finding.reads.lexical_search(["chat"], "Zorblax", k=5, max_df_share=0.1) == []
    assert (await memory._finding.ahead.measure("x", ["chat"])).background is None
    # The chat's turn numbers start again at 1: new turns are indexed with their new words.
    await load(memory, tmp_path, "chat", [(1, "Our cat Mittens learned to open doors.", "Clever cat.")])
    await memory._archiver.indexer.sync_index(["chat"])
    [(hit, _, _)] = await memory._finding.reads.lexical_search(["chat"], "Mittens", k=5, max_df_share=1.0)
    assert hit["id"] == archive_id("chat", 1) and await memory._finding.reads.lexical_search(["chat"], "Zorblax", 5, 1.0) == []


# ---------------------------------------------------------------- time ranges and keys from the index


def days_ago(days: float) -> float:
    return (NOW - timedelta(days=days)).timestamp()


async def test_the_index_keeps_each_entrys_time_and_vector(raw_redis) -> None:
    index = LexicalIndex(raw_redis)
    unit = np.eye(384, dtype=np.float32)
    await index.add("chat", [("a", "first", unit[0], 100.0), ("b", "second", unit[1], 200.0),
                             ("c", "third", unit[2], 300.0)])
    numbers = await index.entries.between("chat", 150.0, 300.0)  # inclusive bounds
    assert await index.entries.ids("chat", numbers) == ["b", "c"]
    assert list(await index.entries.ids("chat", await index.entries.between("chat", None, 100.0))) == ["a"]
    assert list(await index.entries.ids("chat", await index.entries.between("chat", 150.0, None, limit=1))) == ["b"]
    np.testing.assert_array_equal(await index.entries.vectors("chat", numbers), unit[[1, 2]])


async def exactly_within(memory: Memory, chat_id: str, query: Scale, k: int, after: float | None,
                         before: float | None) -> list[tuple[str, float]]:
    """The chat's ``k`` entries timed within the range nearest to the query of ``query``, as
    (id, distance on its scale), ranked from every vector Chroma holds."""
    store = await memory._backends.l3.episodic()
    stored = store.get_with_vectors([chat_id], [hit["id"] for hit in store.entries(chat_id)])
    within = [(hit["id"], float(query.of_passages(vector[None])[0]))
              for hit, vector in stored
              if (after is None or hit["timestamp"] >= after) and (before is None or hit["timestamp"] <= before)]
    return sorted(within, key=lambda found: found[1])[:k]


async def test_a_time_range_is_ranked_from_the_index_exactly(runner, tmp_path) -> None:
    memory = runner.services.memory
    await load(memory, tmp_path, "chat")
    query = await memory._finding.ahead.measure("how are the tomato plants?", ["chat"])
    for after, before in ((days_ago(31), days_ago(16.5)), (days_ago(17.5), days_ago(16.5)), (None, days_ago(25.5)),
                          (days_ago(20), None), (days_ago(3), days_ago(1))):
        from_index = await memory._finding.reads.search(["chat"], query, 5, after, before)
        exact = await exactly_within(memory, "chat", query, 5, after, before)
        assert [h["id"] for h in from_index] == [entry_id for entry_id, _ in exact]
        assert [h["distance"] for h in from_index] == pytest.approx([d for _, d in exact], abs=2e-3)
        assert all(h["content"] and h["metadata"]["chat_id"] == "chat" for h in from_index)
    [flowers] = await memory._finding.reads.search(["chat"], query, 5, days_ago(17.5), days_ago(16.5))
    assert "first flowers" in flowers["content"]


async def test_a_wide_range_is_searched_deeper_by_meaning_and_cut_to_the_range(runner, tmp_path, monkeypatch) -> None:
    memory = runner.services.memory
    await load(memory, tmp_path, "chat")
    await memory._archiver.indexer.sync_index(["chat"])
    monkeypatch.setattr("memory.retrieval.finding.search._EXACT_RANGE", 3)  # every range of this chat is "wide"
    query = await memory._finding.ahead.measure("how are the tomato plants?", ["chat"])
    after, before = days_ago(29.5), days_ago(16.5)
    found = await memory._finding.reads.search(["chat"], query, 4, after, before)
    exact = await exactly_within(memory, "chat", query, 4, after, before)
    assert [h["id"] for h in found] == [entry_id for entry_id, _ in exact]
    assert all(after <= h["timestamp"] <= before for h in found)


async def test_the_word_search_takes_its_vectors_from_the_index(runner, tmp_path) -> None:
    memory = runner.services.memory
    await load(memory, tmp_path, "chat")
    store = await memory._backends.l3.episodic()
    found = await memory._finding.reads.lexical_search(["chat"], "tomato plants Zorblax", k=5, max_df_share=1.0)
    assert len(found) >= 2
    stored = {hit["id"]: (hit, vector) for hit, vector in store.get_with_vectors(["chat"], [h["id"] for h, _, _ in found])}
    for hit, vector, _ in found:
        stored_hit, stored_vector = stored[hit["id"]]
        assert hit == stored_hit
        assert np.allclose(vector, stored_vector, atol=2e-3) and not np.array_equal(vector, stored_vector)  # float16


async def test_an_index_from_before_times_and_vectors_is_indexed_afresh(runner, tmp_path, embedded_raw_redis) -> None:
    memory = runner.services.memory
    await load(memory, tmp_path, "chat")
    index = await memory._backends.redis.lexical_index()
    # As an index written by a words-only version.
    await embedded_raw_redis.hdel(index.entries.key("chat", "meta"), "layout")
    await embedded_raw_redis.delete(index.entries.key("chat", "time"), index.entries.key("chat", "vectors"))
    assert await index.outdated("chat") and await index.indexed_turns("chat") == 0
    await memory._archiver.indexer.sync_index(["chat"])
    assert not await index.outdated("chat")
    query = await memory._finding.ahead.measure("how are the tomato plants?", ["chat"])
    [flowers] = await memory._finding.reads.search(["chat"], query, 5, days_ago(17.5), days_ago(16.5))
    assert "first flowers" in flowers["content"]


async def test_keys_are_found_through_the_index_exactly_and_case_sensitively(runner, tmp_path) -> None:
    memory = runner.services.memory
    await load(memory, tmp_path, "chat", [
        *HISTORY,
        (10, "Ticket 5675 and alpha were mentioned apart here.", "Noted."),
        (9, "ALPHA-5675 in capitals is another key.", "Noted."),
    ])
    found = await memory._finding.reads.find_by_keys(["chat"], ["alpha-5675"], limit=10)
    assert sorted(h["id"] for h in found) == [archive_id("chat", 2), archive_id("chat", 15)]
    [by_turn] = await memory._finding.reads.find_by_keys(["chat"], ["turn_0003"], limit=10)
    assert "Zorblax" in by_turn["content"]
    assert await memory._finding.reads.find_by_keys(["chat"], ["beta-5675"], limit=10) == []
    assert len(await memory._finding.reads.find_by_keys(["chat"], ["alpha-5675"], limit=1)) == 1


# ---------------------------------------------------------------- what the graph injects


async def test_a_rare_name_is_found_by_its_words(runner, tmp_path) -> None:
    await load(runner.services.memory, tmp_path, "chat")
    state = await runner.inspect("chat", "Is Zorblax still at it?", now=NOW.timestamp())
    parrot = archive_id("chat", 3)
    assert state["recalls"]["lexical"][0]["id"] == parrot
    assert all(hit["mechanism"] == "lexical" for hit in state["recalls"]["lexical"])
    assert parrot in [entry["id"] for entry in state["l3"]]
    report = turn_report(state)
    assert report["prefetch"]["fired"] == ["thematic", "lexical"] and report["prefetch"]["found"]["lexical"] > 0
    assert 0.0 < report["prefetch"]["background"] < 2.0  # closer than orthogonal, on average


async def test_a_two_part_question_injects_both_parts(runner, tmp_path) -> None:
    await load(runner.services.memory, tmp_path, "chat")
    report = await inspect(runner, "chat", "How are my San Marzano tomatoes, and is the alpha-5675 migration fixed?")
    injected = " ".join(entry["content"] for entry in report["l3"])
    assert "San Marzano" in injected and "first flowers" in injected
    assert "alpha-5675" in injected and "2.3.1" in injected


@pytest.mark.parametrize("message", ["what's the boiling point of nitrogen?", "how do I reverse a list in Python?",
                                     "convert 30 degrees Celsius to Fahrenheit"])
async def test_an_unrelated_question_injects_nothing(runner, tmp_path, message: str) -> None:
    await load(runner.services.memory, tmp_path, "chat")
    report = await inspect(runner, "chat", message)
    assert report["prefetch"]["background"] is not None and report["prefetch"]["found"]["thematic"] > 0
    assert report["l3"] == [] and report["tokens"]["l3"] == 0


# A chat whose sessions open with greetings, as people's do (LoCoMo's conv-43: "hi, how are you?"
# injected ten of its greetings, 970 L3 tokens).
GREETINGS = [(14 - n, f"Hey! {opening}", reply) for n, (opening, reply) in enumerate([
    ("How are you doing today?", "Hi! I'm good, thanks for asking. How about you?"),
    ("Long time no see, how have you been?", "Hey! Been well, busy week. You?"),
    ("How's it going?", "All good here! How are things with you?"),
    ("Hope you're doing well!", "Doing great, thanks! And you?"),
])]


@pytest.mark.parametrize("message", ["hi, how are you?", "how's it going?", "thanks, that's all for now"])
async def test_a_message_naming_nothing_recalls_nothing_even_among_greetings(runner, tmp_path, message: str) -> None:
    await load(runner.services.memory, tmp_path, "chat", HISTORY + GREETINGS)
    report = await inspect(runner, "chat", message)
    assert report["l3"] == [] and "thematic" not in report["prefetch"]["fired"], report["l3"]
    # The same greetings still stand out for a message that names something.
    about = await inspect(runner, "chat", "How was the busy week you had?")
    assert any("busy week" in entry["content"] for entry in about["l3"])


async def test_the_relevance_ratio_is_a_run_time_knob(runner, tmp_path) -> None:
    await load(runner.services.memory, tmp_path, "chat")
    question = "Which tomato variety did I plant on the balcony?"
    none = await inspect(runner, "chat", question, overrides={"retrieval.relevance_ratio": 0.01,
                                                              "retrieval.lexical_relevance_ratio": 0.01})
    assert none["l3"] == []
    default = await inspect(runner, "chat", question)
    wide = await inspect(runner, "chat", question, overrides={"retrieval.relevance_ratio": 1.0})
    assert 0 < len(default["l3"]) < len(wide["l3"])


# Remarks that a later statement bears on while sharing few of its words (what LoCoMo-Plus
# measures, in phrasings of our own): (the remark, months before; the statement, today).
BEARINGS = [
    ("Since I started turning down extra shifts, my evenings finally feel like my own again.",
     "My boss talked me into covering the whole weekend rota, and now I barely get a night off."),
    ("Ever since the break-in downstairs I double-check the front door lock every night.",
     "Our building finally installed cameras in the entrance hall."),
]


@pytest.mark.parametrize("remark, statement", BEARINGS)
async def test_a_statement_brings_back_the_remark_it_bears_on(runner, tmp_path, remark: str, statement: str) -> None:
    told = (120, remark, "That sounds like a real change for you.")
    await load(runner.services.memory, tmp_path, "chat", [told, *HISTORY])
    report = await inspect(runner, "chat", statement)
    assert report["prefetch"]["meaning_first"] == "a statement about its speaker"
    assert remark in [entry["content"].split("\n")[0].removeprefix("user: ") for entry in report["l3"]], report["l3"]
    greeting = await inspect(runner, "chat", "hi, how are you?")
    assert greeting["l3"] == [] and greeting["tokens"]["l3"] == 0


# One topic told over months (a dog's life: walks, food, the vet, training), one event a question.
DOG_DAYS = [
    "Took Biscuit for a long walk along the river, he loved it.",
    "Biscuit has been pulling on the leash again during our walks.",
    "Fed Biscuit the new salmon kibble, he likes it more than the chicken one.",
    "Biscuit barked at the mailman for ten minutes straight today.",
    "We went to the dog park and Biscuit played with a husky.",
    "Biscuit chewed one of my sneakers while I was at work.",
    "Brushed Biscuit's coat, there was so much fur everywhere.",
    "Biscuit finally learned to sit and stay for a treat.",
    "The vet said Biscuit is a healthy weight now, 14 kilos.",
    "Biscuit got his rabies booster shot at the clinic on Elm Street.",
    "Biscuit slept on the couch all afternoon after the walk.",
    "We bought Biscuit a new orthopedic dog bed.",
    "Biscuit dug a hole under the fence in the backyard.",
    "Biscuit passed the canine good citizen test at the training club!",
    "Biscuit has a new favourite squeaky toy, a rubber duck.",
    "Long walk with Biscuit in the rain, we both got soaked.",
    "Took Biscuit swimming at the lake for the first time, he was scared at first.",
    "Biscuit's nails were trimmed at the groomer, he hated it.",
    "Biscuit started the six-week agility course on Saturdays.",
    "Biscuit stole a sandwich off the kitchen counter.",
    "Biscuit was limping a bit, turns out a thorn in his paw.",
    "Biscuit wore his new red harness to the park.",
]


@pytest.mark.parametrize("event, question", [
    (13, "When did Biscuit pass the good citizen test?"), (18, "What course did Biscuit start?"),
    (9, "Which clinic gave Biscuit his booster?"), (20, "Why was Biscuit limping?"),
    (8, "How much does Biscuit weigh according to the vet?"),
])
async def test_an_event_in_a_crowded_topic_is_found_by_what_it_names(runner, tmp_path, event: int, question: str) -> None:
    history = [(120 - 5 * n, line, "Sounds good!") for n, line in enumerate(DOG_DAYS)]
    await load(runner.services.memory, tmp_path, "chat", history + HISTORY)
    report = await inspect(runner, "chat", question)
    assert report["l3"] and report["l3"][0]["id"] == archive_id("chat", event + 1), report["l3"]


# An event told over two turns: the question names the puppy, and only the turn before says where it came from.
ADOPTION = [(40, "Big news: we brought home a rescue puppy from the Maple Road shelter this morning!",
             "Congratulations! What will you call the little one?"),
            (40, "We named him Pickles, after my grandmother's old cat.", "Pickles is a lovely name!")]


async def test_the_turn_before_the_best_is_injected_beside_it(runner, tmp_path) -> None:
    await load(runner.services.memory, tmp_path, "chat", HISTORY + ADOPTION)
    told, named = archive_id("chat", len(HISTORY) + 1), archive_id("chat", len(HISTORY) + 2)
    report = await inspect(runner, "chat", "Where did we get Pickles from?")
    injected = [(entry["id"], entry["mechanism"]) for entry in report["l3"]]
    assert injected[0] == (named, "thematic") and injected[-1] == (told, "beside"), injected
    verdicts = await runner.inspect("chat", "Where did we get Pickles from?", now=NOW.timestamp())
    assert {"list": "beside", "id": told, "distance": 0.0, "kept": True,
            "why": f"the turn just before {named}, one of the best"} in verdicts["verdicts"]
    alone = await inspect(runner, "chat", "Where did we get Pickles from?", overrides={"retrieval.beside_best": 0})
    assert told not in [entry["id"] for entry in alone["l3"]], alone["l3"]


# A remark told months ago, and a statement that bears on it in other words (as LoCoMo-Plus pairs them).
DEPOSIT = [(120, "I want to save enough for a house deposit by next summer.", "Noted.")]
MALDIVES = "I just booked a week in the Maldives on a whim."


async def test_a_statement_gets_the_next_nearest_by_meaning_in_place_of_the_turns_beside(runner, tmp_path) -> None:
    await load(runner.services.memory, tmp_path, "chat", DEPOSIT + HISTORY + ADOPTION)
    state = await runner.inspect("chat", MALDIVES, now=NOW.timestamp())
    assert state["prefetch"]["meaning_first"] == "a statement about its speaker"
    chosen = [hit["id"] for hit in state["l3_candidates"] if hit["mechanism"] != "nearest"]
    nearest = [hit["id"] for hit in sorted(state["recalls"]["thematic"], key=lambda hit: hit["distance"])
               if hit["id"] not in chosen][:4]  # twice retrieval.beside_best
    assert chosen and [hit["id"] for hit in state["l3_candidates"]] == chosen + nearest
    why = "among the next nearest by meaning, for a statement"
    assert [(v["list"], v["id"], v["why"]) for v in state["verdicts"] if v["list"] == "nearest"] == [
        ("nearest", entry_id, why) for entry_id in nearest]
    # The remark is not among what stands out, but among the next nearest: injected, and only so.
    cue = archive_id("chat", 1)
    assert (cue, "nearest") in [(entry["id"], entry["mechanism"]) for entry in turn_report(state)["l3"]]
    alone = await inspect(runner, "chat", MALDIVES, overrides={"retrieval.beside_best": 0})
    assert cue not in [entry["id"] for entry in alone["l3"]], alone["l3"]
    # A question in the same chat still has the turns beside its best, and no next nearest.
    asked = await inspect(runner, "chat", "Where did we get Pickles from?")
    assert "beside" in [entry["mechanism"] for entry in asked["l3"]]
    assert "nearest" not in [entry["mechanism"] for entry in asked["l3"]]


@pytest.mark.parametrize("question", ["What did we get up to the first weekend of August?",
                                      "Remind me what happened in early August", "what did I do over the summer?",
                                      "what did I do between July and September?",
                                      "what was I up to a few months ago", "the third quarter of this year?",
                                      "what did we do the week of August 1st?"])
async def test_the_days_of_a_named_period_are_injected(runner, tmp_path, question: str) -> None:
    cabin = (NOW.date() - date(2026, 8, 1)).days  # a Saturday
    told = [(cabin, "We drove up to the lake cabin and grilled the trout we caught.", "What a day!"),
            (cabin + 40, "I repainted the hallway a pale green.", "Fresh!")]
    await load(runner.services.memory, tmp_path, "chat", told + HISTORY)
    report = await inspect(runner, "chat", question)
    assert report["prefetch"]["range"] is not None
    assert archive_id("chat", 1) in [entry["id"] for entry in report["l3"]], report["l3"]


async def test_a_goodbye_naming_the_day_injects_nothing_and_a_question_naming_a_thing_and_the_day_does(
        runner, tmp_path) -> None:
    told = [(0, "I fixed the leaking kitchen tap this morning. See you tomorrow!", "Nice work, talk tomorrow!")]
    await load(runner.services.memory, tmp_path, "chat", told + HISTORY)
    later = (NOW + timedelta(hours=2)).timestamp()
    for goodbye in ("thanks, that's all for today", "see you tomorrow!"):
        report = turn_report(await runner.inspect("chat", goodbye, now=later))
        assert report["l3"] == [], (goodbye, report["l3"])
    fixed = turn_report(await runner.inspect("chat", "what did I fix today?", now=later))
    assert archive_id("chat", 1) in [entry["id"] for entry in fixed["l3"]], fixed["l3"]


async def test_inspect_says_why_a_message_naming_a_time_has_no_period(runner, tmp_path) -> None:
    await load(runner.services.memory, tmp_path, "chat")
    report = await inspect(runner, "chat", "What should I cook next week?")
    assert report["prefetch"]["range"] is None
    assert report["prefetch"]["range_unread"].endswith("no period that ended before today")
    dated = await inspect(runner, "chat", "What did I cook last week?")
    assert dated["prefetch"]["range"] is not None and "range_unread" not in dated["prefetch"]


@pytest.mark.parametrize("question", ["what did I do the week of March 0?", "How many pets did we have as of March 1950?",
                                      "2023 2024 1999 " * 134])
async def test_a_date_phrase_never_breaks_recall(runner, tmp_path, monkeypatch, question: str) -> None:
    """A day its month lacks, a range that would end before it starts, 2 000 characters of numbers:
    no period, said so, nothing degraded; and dateparser (milliseconds a number) is handed a few."""
    import memory.retrieval.message.dates as dates_module

    parse, handed = dates_module.search_dates, []

    def counted(text, *args, **kwargs):  # in a worker thread
        handed.append(text)
        return parse(text, *args, **kwargs)

    monkeypatch.setattr(dates_module, "search_dates", counted)
    await load(runner.services.memory, tmp_path, "chat")
    report = await inspect(runner, "chat", question)
    assert "prefetch" not in report["degraded"], report["degraded"]
    assert report["prefetch"]["range"] is None
    assert report["prefetch"]["range_unread"].endswith("no period that ended before today")
    assert sum(any(char.isdigit() for char in word) for text in handed for word in text.split()) <= 8, handed


async def test_a_question_as_of_a_month_searches_every_day_up_to_its_end(runner, tmp_path) -> None:
    days_ago = lambda day: (NOW.date() - day).days  # noqa: E731
    told = [(days_ago(date(2026, 3, 14)), "We adopted a grey kitten and called her Miso.", "Welcome, Miso!"),
            (days_ago(date(2026, 5, 2)), "We brought home a rescue rabbit named Clover.", "Rabbits are great."),
            (days_ago(date(2026, 10, 9)), "My aunt gave us her old parrot Kiwi.", "Parrots live long!")]
    await load(runner.services.memory, tmp_path, "chat", told + HISTORY)
    state = await runner.inspect("chat", "How many pets did we have, as of September?", now=NOW.timestamp())
    report = turn_report(state)
    # Before: September alone, whose days hold none of them.
    after, before = report["prefetch"]["range"]
    assert after is None and before.startswith("2026-09-30"), report["prefetch"]["range"]
    assert " · range …2026-09-30" in render_report(report)  # as goat inspect prints it
    by_period = [hit["id"] for hit in state["recalls"]["temporal"]]
    assert {archive_id("chat", 1), archive_id("chat", 2)} <= set(by_period), by_period
    assert archive_id("chat", 3) not in by_period  # told in October, after the stock is taken


async def test_a_period_counted_from_an_event_is_the_days_from_the_entry_that_tells_it(runner, tmp_path) -> None:
    wedding = 60
    told = [(wedding, "My cousin Dana got married in a barn, we danced until 2am.", "Sounds magical!"),
            (wedding - 14, "I finally fixed the leaking kitchen tap with a new washer.", "Handy!"),
            (wedding - 40, "I fixed the squeaky bedroom door hinge with some oil.", "Nice.")]
    await load(runner.services.memory, tmp_path, "chat", told + HISTORY)
    # The turns beside the best left out: the period's own choice is what is looked at.
    report = await inspect(runner, "chat", "What did I fix two weeks after the wedding?",
                           overrides={"retrieval.beside_best": 0})
    assert report["prefetch"]["range_from_event"].startswith(archive_id("chat", 1))
    injected = [entry["id"] for entry in report["l3"]]
    assert archive_id("chat", 2) in injected and archive_id("chat", 3) not in injected, report["l3"]
    # No entry tells the event: no period, and inspect says why.
    report = await inspect(runner, "chat", "What did I fix two weeks after the quantum chromodynamics exam?")
    assert report["prefetch"]["range"] is None
    assert report["prefetch"]["range_from_event"].startswith("no entry stands out for")


# A mostly English chat with a few lines in Russian, which share their function words ("у меня",
# "по") more than their topics.
RUSSIAN_DAYS = [
    (40, "У меня на даче поселился ёжик, каждую ночь шуршит под крыльцом.", "Какой милый сосед."),
    (38, "Весной у меня сильная аллергия на пыльцу берёзы.", "Тяжёлое время года."),
    (36, "Я вступил в шахматный клуб при библиотеке, играем по средам.", "Отличное хобби."),
    (34, "По выходным я теперь помогаю в приюте для собак.", "Собаки будут рады."),
    (32, "Я записался в бассейн и плаваю по утрам три раза в неделю.", "Отличная привычка."),
]


async def test_a_question_in_another_language_is_judged_by_meaning_first(runner, tmp_path) -> None:
    await load(runner.services.memory, tmp_path, "chat", RUSSIAN_DAYS + HISTORY)
    report = await inspect(runner, "chat", "Подскажи, по каким дням у меня шахматы", overrides={"prefetch.timeout": 30})
    assert report["prefetch"]["meaning_first"] == "asked in another language than English"
    assert report["l3"][0]["id"] == archive_id("chat", 3), report["l3"]


class WordlessSearch(L3Reads):
    async def lexical_search(self, *args, **kwargs):
        raise RuntimeError("word index unreadable")


def wordless_memory(settings: Settings, embeddings: LocalEmbeddings) -> Memory:
    memory = Memory(settings, embeddings=embeddings)
    reads = WordlessSearch(memory._backends.redis, memory._backends.l3, memory._backends.encoder)
    memory._finding = replace(memory._finding, reads=reads)
    memory._finding.ahead.reads = reads  # its word search read ahead of the turn fails too
    return memory


async def test_a_failing_word_search_costs_only_itself(settings, embeddings, tmp_path) -> None:
    runner = TurnRunner(CheckpointedServices(settings, wordless_memory(settings, embeddings)))
    try:
        await load(runner.services.memory, tmp_path, "chat")
        report = await inspect(runner, "chat", "Which tomato variety did I plant on the balcony?")
        assert report["prefetch"]["failed"] == {"lexical": "RuntimeError: word index unreadable"}
        assert "lexical failed" in report["degraded"]["prefetch"]
        assert report["prefetch"]["succeeded"] == ["thematic"]
        assert any("San Marzano" in entry["content"] for entry in report["l3"])  # the gap test still runs
    finally:
        await runner.aclose()


async def test_a_wide_scope_stays_within_the_redis_connection_pool(runner, tmp_path) -> None:
    memory = runner.services.memory
    await load(memory, tmp_path, "chat-0")
    chats = [f"chat-{n}" for n in range(300)]  # more than the client's 100 connections
    await memory._archiver.indexer.sync_index(chats)
    [(hit, _, _)] = await memory._finding.reads.lexical_search(chats, "Zorblax", k=5, max_df_share=0.5)
    assert hit["id"] == archive_id("chat-0", 3)


async def test_a_time_ranges_vectors_are_widened_only_where_its_query_reads_them(raw_redis) -> None:
    """A time range is ranked from its entries' stored vectors, read and widened from half
    precision only where some space's query is not zero, and in the English block: the very
    same distances."""
    rng = np.random.default_rng(7)
    english = np.hstack([rng.normal(size=(6, 6)), np.zeros((6, 3))])  # a paired encoder's [MiniLM, e5, 0]
    other = np.hstack([np.zeros((4, 6)), rng.normal(size=(4, 3))])  # and its [0, 0, e5]
    vectors = np.vstack([english, other])
    index = LexicalIndex(raw_redis, dimensions=9, english_block=3)
    await index.add("chat", [IndexEntry(f"e{n}", f"line {n}", vector, float(n)) for n, vector in enumerate(vectors)])
    query = rng.normal(size=9)
    minilm = Space("minilm-l6", np.r_[query[:3], np.zeros(6)], "english", 1.6)
    e5 = Space("e5-small", np.r_[np.zeros(6), query[6:]], "other", 0.5)
    # A time range's entries (consecutive: read as one span), scattered ones, and entries
    # past the last one written (zeros).
    for numbers in (await index.entries.between("chat", 0.0, 9.0), np.array([0, 5, 9]), np.array([7, 8, 9, 10, 11])):
        whole = await index.entries.vectors("chat", numbers)
        assert np.allclose(whole[numbers < 10], vectors[numbers[numbers < 10]], atol=1e-2)
        assert not whole[numbers >= 10].any()
        for spaces, widened in (([minilm], 3), ([minilm, e5], 6)):
            scale = Scale(spaces, {space.name: 1.0 for space in spaces}, english_block=3)
            read = await index.entries.vectors("chat", numbers, scale.columns)
            assert scale.columns.sum() == widened and not read[:, ~scale.columns].any()
            assert np.array_equal(read[:, scale.columns], whole[:, scale.columns])
            assert np.array_equal(scale.of_passages(read), scale.of_passages(whole))


async def test_a_turn_reads_its_chats_centroid_as_it_takes_the_chat(runner: TurnRunner, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The centroid a turn's question is measured against is read once, when the turn holds its
    chat (beside its checkpoint's read), not after the question's embedding; it is the one a
    recall outside a turn reads, and a turn that ends without asking leaves none behind."""
    from memory.facade import RecallQuery

    memory = runner.services.memory
    await load(memory, tmp_path, "c1")
    assert await measurement_hooks(memory).settle() == 0
    index = await memory._backends.redis.entry_index()
    reads: list[list[str]] = []
    centroid = index.centroid

    async def counted(chats):
        reads.append(list(chats))
        return await centroid(chats)

    monkeypatch.setattr(index, "centroid", counted)
    question = RecallQuery("Where did the Lisbon trip go?", "c1", "alice", NOW.timestamp())
    outside = await memory.recall(question)
    assert reads == [["c1"]]
    await (await memory._backends.redis.cache()).clear()  # asked again, the question would be a hit: nothing read
    async with memory.turn("c1", question.text, "alice"):
        await asyncio.sleep(0)  # the turn's own first step: the read has started
        assert reads == [["c1"], ["c1"]]
        inside = await memory.recall(question)
    assert reads == [["c1"], ["c1"]]  # no second read for the question
    assert inside.background == outside.background and inside.lists == outside.lists
    async with memory.turn("c1", "a message never asked", "alice"):
        await asyncio.sleep(0)
    assert len(reads) == 3
    await memory.recall(replace(question, text="Who came on the Lisbon trip?"))
    assert len(reads) == 4  # the unused read was dropped with its turn: the recall read afresh


async def test_a_turn_lets_its_chat_go_once_its_searchs_cache_write_has_landed(
        runner: TurnRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The search cache is written behind the search, off the turn's path, but before the turn
    lets its chat go: whoever holds the chat next (a forget, in any process) finds it landed."""
    from memory.facade import RecallQuery

    memory = runner.services.memory
    await load(memory, tmp_path, "c1")
    assert await measurement_hooks(memory).settle() == 0
    cache, redis = await memory._backends.redis.cache(), await memory._backends.redis.client()
    ending, put, landed = asyncio.Event(), cache.put, []
    drop_ahead = memory._finding.ahead.drop_ahead

    def turn_ends(chat_id: str) -> None:
        ending.set()
        drop_ahead(chat_id)

    async def slow_put(*args) -> None:
        await ending.wait()  # a write still under way as the turn ends: many round trips
        for _ in range(20):
            await redis.ping()
        await put(*args)
        landed.append(args[1])

    monkeypatch.setattr(cache, "put", slow_put)
    monkeypatch.setattr(memory._finding.ahead, "drop_ahead", turn_ends)
    question = RecallQuery("Where did the Lisbon trip go?", "c1", "alice", NOW.timestamp())
    async with memory.turn("c1", question.text, "alice"):
        recalled = await memory.recall(question)
        assert recalled.outcome["cache"]["hit"] is False and landed == []
    assert landed == [recalled.outcome["cache"]["key"]]
    assert (await memory.recall(question)).outcome["cache"]["hit"] is True


async def test_a_question_asked_again_is_neither_searched_nor_embedded_again(
        runner: TurnRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The L2.5 cache keeps what a question's thematic searches found and its scale: asked again,
    it recalls the same lists on the same background without Chroma's search, the word search
    or an embedding (none is started, so none is waited for); a write to the chat has it
    searched and measured afresh."""
    import threading

    from memory.facade import RecallQuery

    memory = runner.services.memory
    await load(memory, tmp_path, "c1")
    assert await measurement_hooks(memory).settle() == 0
    encoder, index = (await memory._backends.encoder.embeddings()).encoder, await memory._backends.redis.lexical_index()
    store = await memory._backends.l3.episodic()
    calls: list[str] = []
    encode, by_words, by_meaning = encoder.encode, index.search, store.search
    encoder_free = threading.Event()

    def counted(name, call):
        def count(*args, **kwargs):
            calls.append(name)
            return call(*args, **kwargs)
        return count

    def held_encode(*args, **kwargs):
        calls.append("embedded")
        assert encoder_free.wait(timeout=30)
        return encode(*args, **kwargs)

    monkeypatch.setattr(index, "search", counted("by words", by_words))
    monkeypatch.setattr(store, "search", counted("by meaning", by_meaning))
    question = RecallQuery("How are my San Marzano tomatoes doing?", "c1", "alice", NOW.timestamp(), deadline=10.0)
    monkeypatch.setattr(encoder, "encode", counted("embedded", encode))
    first = await memory.recall(question)
    assert first.outcome["cache"]["hit"] is False and sorted(calls) == ["by meaning", "by words", "embedded"]
    assert first.lists["thematic"] and first.lists["lexical"]
    monkeypatch.setattr(encoder, "encode", held_encode)  # an embedding that never ends, until released
    try:
        again = await memory.recall(question)
    finally:
        encoder_free.set()
    assert again.outcome["cache"]["hit"] is True and again.outcome["timed_out"] == []
    assert calls[3:] == []
    assert again.lists == first.lists and again.outcome["backgrounds"] == first.outcome["backgrounds"]
    assert again.ceiling == first.ceiling
    await memory.scope("c1", "alice", now=NOW.timestamp()).store("The San Marzano tomatoes got blight in July.")
    del calls[:]
    afresh = await memory.recall(question)
    assert afresh.outcome["cache"]["hit"] is False and {"by meaning", "by words"} <= set(calls)
    assert afresh.outcome["backgrounds"] != first.outcome["backgrounds"]  # measured against the chat as it is now


async def test_a_question_asked_first_is_embedded_beside_its_cache_lookup(
        runner: TurnRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A question this process has not lately found in the L2.5 cache starts its embedding, its
    word search and its search by meaning as its search starts, not once the cache has answered
    (the lookup's round trip is not spent in front of them); one found there is none of them (the
    test above)."""
    import asyncio
    import contextlib
    import threading

    from memory.facade import RecallQuery

    memory = runner.services.memory
    await load(memory, tmp_path, "c1")
    assert await measurement_hooks(memory).settle() == 0
    encoder, cache = (await memory._backends.encoder.embeddings()).encoder, await memory._backends.redis.cache()
    index = await memory._backends.redis.lexical_index()
    encode, lookup, by_words, by_meaning = encoder.encode, cache.lookup, index.search, memory._finding.reads.search
    encoding, searching_words, searching_by_meaning = threading.Event(), asyncio.Event(), asyncio.Event()
    seen_by_lookup: list[bool] = []

    def noted_encode(*args, **kwargs):
        encoding.set()
        return encode(*args, **kwargs)

    async def noted_by_words(*args, **kwargs):
        searching_words.set()
        return await by_words(*args, **kwargs)

    async def noted_by_meaning(*args, **kwargs):
        searching_by_meaning.set()
        return await by_meaning(*args, **kwargs)

    async def lookup_after_the_encoding_starts(*args, **kwargs):
        seen_by_lookup.append(await asyncio.to_thread(encoding.wait, 10))
        for started in (searching_words, searching_by_meaning):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(started.wait(), 10)
            seen_by_lookup.append(started.is_set())
        return await lookup(*args, **kwargs)

    monkeypatch.setattr(encoder, "encode", noted_encode)
    monkeypatch.setattr(index, "search", noted_by_words)
    monkeypatch.setattr(memory._finding.reads, "search", noted_by_meaning)
    monkeypatch.setattr(cache, "lookup", lookup_after_the_encoding_starts)
    question = RecallQuery("Which seeds did I order for the balcony?", "c1", "alice", NOW.timestamp(), deadline=30.0)
    first = await memory.recall(question)
    assert seen_by_lookup == [True, True, True]
    assert first.outcome["cache"]["hit"] is False and first.lists["thematic"] and first.lists["lexical"]


async def test_a_turns_message_is_searched_by_words_as_the_turn_takes_its_chat(
        runner: TurnRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A turn's message is searched by words as soon as the turn holds its chat, not once its
    prefetch asks: the question's word search then takes that search over (no second one),
    and finds what a search of its own finds. A question searched with other settings (a run's
    overrides) does not take it."""
    import contextlib

    from memory.facade import RecallQuery

    memory = runner.services.memory
    await load(memory, tmp_path, "c1")
    assert await measurement_hooks(memory).settle() == 0
    question = RecallQuery("Which seeds did I order for the balcony?", "c1", "alice", NOW.timestamp(), deadline=30.0)
    alone = await memory.recall(question)
    index = await memory._backends.redis.lexical_index()
    by_words, searched = index.search, asyncio.Event()
    calls: list[str] = []

    async def noted_by_words(chat_id, *args, **kwargs):
        calls.append(chat_id)
        searched.set()
        return await by_words(chat_id, *args, **kwargs)

    monkeypatch.setattr(index, "search", noted_by_words)
    deeper = memory.settings.with_overrides({"prefetch.search_k": memory.settings.prefetch.search_k + 1})
    for settings, searches in ((memory.settings, 1), (deeper, 2)):
        await measurement_hooks(memory).forget_searches()
        calls.clear()
        searched.clear()
        async with memory.turn("c1", question.text, "alice"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(searched.wait(), 10)
            assert calls == ["c1"], "not searched by words as the turn took its chat"
            in_turn = await memory.recall(question, settings)
        assert calls == ["c1"] * searches
        assert in_turn.outcome["cache"]["hit"] is False
        if searches == 1:
            assert in_turn.lists == alone.lists


async def test_searches_started_ahead_and_found_cached_after_all_leave_the_others_theirs(
        runner: TurnRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A question the cache holds though this process's hint says otherwise (another process
    filed it) starts its searches ahead, and drops them when the lookup hits. Dropping them must
    not cancel what the other mechanisms wait for: here the scope's chats, read only once the
    search by time has parsed its dates (after the hit), which that search then needs."""
    import memory.retrieval.mechanisms.temporal as temporal_mechanism
    import memory.retrieval.finding.question as question_module
    from memory.facade import RecallQuery

    memory = runner.services.memory
    await load(memory, tmp_path, "c1")
    assert await measurement_hooks(memory).settle() == 0
    question = RecallQuery("What did I order for the balcony yesterday?", "c1", "alice", NOW.timestamp(),
                           deadline=30.0)
    first = await memory.recall(question)
    assert first.outcome["cache"]["hit"] is False and "temporal" in first.outcome["fired"]
    memory._finding.cached.forget()  # as in a process that did not file it
    loop, parsed = asyncio.get_running_loop(), asyncio.Event()
    parse, scope_chats = temporal_mechanism.completed_past_range, question_module.scope_chats

    def noted_parse(*args, **kwargs):  # in a worker thread
        loop.call_soon_threadsafe(parsed.set)
        return parse(*args, **kwargs)

    async def chats_read_after_the_parse(*args, **kwargs):
        await parsed.wait()
        return await scope_chats(*args, **kwargs)

    monkeypatch.setattr(temporal_mechanism, "completed_past_range", noted_parse)
    monkeypatch.setattr(question_module, "scope_chats", chats_read_after_the_parse)
    again = await memory.recall(question)
    assert again.outcome["cache"]["hit"] is True
    assert again.outcome["failed"] == {} and again.outcome["timed_out"] == []
    assert again.lists == first.lists


async def test_a_cached_search_written_otherwise_is_searched_and_written_again(runner: TurnRunner, tmp_path: Path) -> None:
    """An entry of the L2.5 cache this version cannot read (another version's) is a miss: the
    question is searched, and its entry written again as this version reads it."""
    from memory.facade import RecallQuery

    memory = runner.services.memory
    await load(memory, tmp_path, "c1")
    question = RecallQuery("How are my San Marzano tomatoes doing?", "c1", "alice", NOW.timestamp())
    first = await memory.recall(question)
    cache, scope = await memory._backends.redis.cache(), cache_scope_key("c1", "alice", memory.settings.memory.scope)
    _, generation = await cache.lookup(scope, first.outcome["cache"]["key"])
    for written_otherwise in ([{"id": "c1:turn_1", "content": "old"}], {"thematic": []}):
        await cache.put(scope, first.outcome["cache"]["key"], written_otherwise, generation)
        again = await memory.recall(question)
        assert again.outcome["cache"]["hit"] is False and again.lists == first.lists
        assert (await memory.recall(question)).outcome["cache"]["hit"] is True


async def test_loading_an_encoder_is_not_counted_in_the_recalls_own_times(
        runner: TurnRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A question that has to load an encoder first (e5, at the first question in another script)
    starts its deadline once it is loaded: its waited time and its mechanisms' times count from
    there too, or a turn would be reported as over its deadline when it was not."""
    import memory.retrieval.finding.recall as recall_module
    from memory.facade import RecallQuery

    memory = runner.services.memory
    await load(memory, tmp_path, "c1")
    clock = [1000.0]

    class Clock:
        @staticmethod
        def perf_counter() -> float:
            return clock[0]

    async def load_for(text: str) -> None:
        clock[0] += 5.0  # as long as the recall's whole deadline

    monkeypatch.setattr(recall_module, "time", Clock)
    monkeypatch.setattr(memory._finding.ahead, "load_for", load_for)
    recalled = await memory.recall(RecallQuery("Where did the Lisbon trip go?", "c1", "alice", NOW.timestamp()))
    assert recalled.outcome["succeeded"] == ["thematic", "lexical"]
    assert recalled.outcome["waited_ms"] == 0 and set(recalled.outcome["ms"].values()) == {0}


# ---------------------------------------------------------------- an assistant's own chats: long turns

ADVICE = ("There are many general things worth weighing here, and every household differs a little in "
          "what works best over the seasons. ")
# A model's replies run to hundreds of tokens; the sentence that answers is one of many.
LONG_TURNS = [
    (31, "Any ideas for a beginner's home workout?", ADVICE * 6 + "Start with three sets of ten squats. " + ADVICE * 4),
    (24, "I just bought a Traeger pellet smoker for the patio! What should I cook first?",
     ADVICE * 5 + "A pork shoulder is forgiving: smoke it at 225 degrees for about ten hours. " + ADVICE * 5),
    (20, "How do I keep basil alive indoors?", ADVICE * 7 + "Basil wants six hours of sun a day. " + ADVICE * 3),
    (12, "Can you suggest a weekend itinerary for Lisbon?", ADVICE * 6 + "Ride tram 28 through Alfama early. " + ADVICE * 4),
]


async def test_a_long_replys_one_relevant_sentence_is_injected_without_the_rest(runner, tmp_path) -> None:
    await load(runner.services.memory, tmp_path, "chat", HISTORY + LONG_TURNS)
    smoker = archive_id("chat", len(HISTORY) + 2)
    report = await inspect(runner, "chat", "How long should the pork shoulder stay in the smoker?")
    [entry] = [entry for entry in report["l3"] if entry["id"] == smoker]
    assert entry["excerpt"] is True
    assert "smoke it at 225 degrees for about ten hours." in entry["content"]
    assert entry["content"].count(ADVICE.strip()) == 0 and len(entry["content"]) < 300
    assert report["tokens"]["l3"] < 250  # the whole turn alone is over 500


async def test_a_question_naming_a_place_in_a_list_the_assistant_gave_gets_that_item(runner, tmp_path) -> None:
    jobs = ("Virtual assistant", "Online tutor", "Freelance writer", "Bookkeeper", "Pet sitter", "Consultant",
            "Transcriptionist", "Reseller", "Tour guide", "Proofreader")
    reply = (ADVICE * 2 + "Here are some work from home jobs for seniors:\n"
             + "".join(f"{n}. {job}: flexible hours, done from home.\n" for n, job in enumerate(jobs, 1)) + ADVICE * 3)
    asked = (15, "Brainstorm work from home jobs for seniors", reply)
    await load(runner.services.memory, tmp_path, "chat", HISTORY + LONG_TURNS + [asked])
    report = await inspect(runner, "chat", "I think we discussed work from home jobs for seniors. "
                                           "Can you remind me what was the 7th job in the list you provided?")
    [entry] = [entry for entry in report["l3"] if "jobs for seniors" in entry["content"]]
    assert entry["excerpt"] is True and "7. Transcriptionist: flexible hours, done from home." in entry["content"]
    assert len(entry["content"]) < 400  # the whole turn is over 800


async def test_a_question_about_the_current_state_puts_the_latest_of_three_mentions_first(runner, tmp_path) -> None:
    books = ("Dune", "Piranesi", "The Left Hand of Darkness")
    # Told months ago, all three: older than the 30-day recency window, which cannot tell them apart.
    mentions = [(days, f"I picked up a new book to read: {book}.", "Enjoy it!") for days, book in zip((120, 90, 45), books)]
    await load(runner.services.memory, tmp_path, "chat", mentions + HISTORY)

    def told(report: dict) -> list[str]:
        """The books whose mention is injected, in the block's order."""
        return [book for entry in report["l3"] for book in books if f"to read: {book}." in entry["content"]]

    current = await inspect(runner, "chat", "Which book am I currently reading?")
    assert current["prefetch"]["latest_first"] is True
    assert told(current) == list(reversed(books)), told(current)
    assert (await inspect(runner, "chat", "Which book did I like?"))["prefetch"]["latest_first"] is False


async def test_how_many_days_ago_gets_the_event_with_its_date(runner, tmp_path) -> None:
    await load(runner.services.memory, tmp_path, "chat", HISTORY + LONG_TURNS)
    report = await inspect(runner, "chat", "How many days ago did I buy the smoker?")
    bought = (NOW - timedelta(days=24)).date().isoformat()
    [smoker] = [format_recall_line(entry) for entry in report["l3"] if "Traeger pellet smoker" in entry["content"]]
    assert smoker.startswith(f"[{bought} "), smoker  # as the model reads it: the day it was told
    assert report["prefetch"]["range"] is None  # "days ago" names no period: the event carries its date


async def test_a_greeting_in_a_chat_of_long_turns_injects_nothing(runner, tmp_path) -> None:
    await load(runner.services.memory, tmp_path, "chat", LONG_TURNS * 3)
    for message in ("hi", "hey, good morning!", "thanks, that's all for today"):
        report = await inspect(runner, "chat", message)
        assert report["l3"] == [] and report["tokens"]["l3"] == 0, (message, report["l3"])
