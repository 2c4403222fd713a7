"""GOAT's memory as LangGraph's Store (graph/server/store.py), on real Redis and Chroma with the real
encoder: LangGraph's own store cases (put, get, search, delete, list_namespaces; batches; sync and
async) in GOAT's two namespaces, and each answer checked against the memory's other doors (the
user commands' verbs, the chat's L2)."""

from __future__ import annotations

import asyncio

import pytest
from langgraph.store.base import GetOp, ListNamespacesOp, MatchCondition, PutOp, SearchOp

from graph.checkpoint import CheckpointedServices
from graph.runner import TurnRunner
from graph.server.store import GoatStore
from graph.settings import Settings
from memory.errors import FactsFull
from memory.facade import Memory, measurement_hooks
from memory.turns import ImportedTurn, archive_id

DAY = 86_400
START = 1_760_000_000  # 2025-10-09T08:53:20Z
SAID = ["I got a new dog, his name is Rex.", "We played frisbee at the beach all afternoon.",
        "My sister moved to Porto last spring.", "I am learning to bake sourdough bread."]
CHAT = ("chats", "c1", "memories")
ANA = ("users", "ana", "facts")


def exchange(key: str, said: str, at: float, user_id: str = "ana") -> ImportedTurn:
    return ImportedTurn(key, user_id, tuple({"role": role, "content": text, "timestamp": at, "user_id": user_id}
                                            for role, text in (("user", said), ("assistant", "Noted."))))


@pytest.fixture
async def memory(settings: Settings, embeddings):
    memory = Memory(settings, embeddings=embeddings)
    await memory.entries.import_turns("c1", [exchange(f"k{n}", said, START + n * DAY) for n, said in enumerate(SAID)])
    assert await measurement_hooks(memory).settle() == 0
    yield memory
    await memory.aclose()


@pytest.fixture
def store(memory: Memory, settings: Settings) -> GoatStore:
    return GoatStore(memory, settings.server)


async def test_a_fact_put_through_the_store_is_the_users_fact_everywhere(store: GoatStore, memory: Memory) -> None:
    await store.aput(ANA, "dog", {"value": "Rex"})
    assert await memory.scope("c1", "ana").facts() == {"dog": "Rex"}  # what /facts shows
    await memory.scope("c1", "ana").remember("city", "Porto")  # /remember
    assert (await store.aget(ANA, "city")).value == {"value": "Porto"}
    listed = await store.asearch(ANA)
    assert [(item.key, item.value) for item in listed] == [("city", {"value": "Porto"}), ("dog", {"value": "Rex"})]
    assert [item.key for item in await store.asearch(ANA, limit=1, offset=1)] == ["dog"]
    await store.adelete(ANA, "dog")
    assert await memory.scope("ana", "ana").facts() == {"city": "Porto"} and await store.aget(ANA, "dog") is None
    assert await store.aget(("users", "bo", "facts"), "city") is None  # another user's facts are theirs

    for bad in ({"value": 3}, {"text": "Rex"}, {"value": "Rex", "since": "2020"}):
        with pytest.raises(ValueError, match="fact's value"):
            await store.aput(ANA, "dog", bad)
    with pytest.raises(FactsFull):
        await store.aput(ANA, "essay", {"value": "word " * 5_000})
    assert await memory.scope("ana", "ana").facts() == {"city": "Porto"}  # nothing written by a refusal


async def test_a_search_is_goats_explicit_search_with_its_words_verdict_and_score(store: GoatStore) -> None:
    [first, *rest] = await store.asearch(CHAT, query="frisbee")
    assert first.key == archive_id("c1", 2) and first.namespace == CHAT
    assert first.value["text"] == f"user: {SAID[1]}\nassistant: Noted."
    assert first.value["role"] == "turn" and first.value["time"] == "2025-10-10T08:53:20+00:00"
    assert first.value["words"] == ["frisbee"] and first.value["why"]
    assert first.score is not None and all(item.score is not None for item in rest)
    assert all("frisbee" not in item.value["words"] for item in rest)

    # limit and offset page the same ranking
    ranked = [item.key for item in await store.asearch(CHAT, query="my dog and my sister", limit=4)]
    assert [item.key for item in await store.asearch(CHAT, query="my dog and my sister", limit=2, offset=1)] \
        == ranked[1:3]


async def test_a_chats_memories_are_listed_newest_first_filtered_and_paged(store: GoatStore) -> None:
    ids = [archive_id("c1", n) for n in range(1, len(SAID) + 1)]
    assert [item.key for item in await store.asearch(CHAT)] == ids[::-1]
    assert [item.key for item in await store.asearch(CHAT, limit=2, offset=1)] == ids[::-1][1:3]
    await store.aput(CHAT, "note-1", {"text": "The spare key is under the blue pot."})
    assert [item.key for item in await store.asearch(CHAT, filter={"role": "note"})] == ["note-1"]
    assert [item.key for item in await store.asearch(CHAT, filter={"role": {"$ne": "note"}})] == ids[::-1]
    in_period = {"time": {"$gte": "2025-10-10", "$lt": "2025-10-12"}}
    assert [item.key for item in await store.asearch(CHAT, filter={"role": "turn", **in_period})] == ids[1:3][::-1]
    found = await store.asearch(CHAT, query="frisbee beach", filter=in_period)
    assert {item.key for item in found} <= set(ids[1:3]) and found[0].key == ids[1]


async def test_a_note_is_put_rewritten_and_deleted_everywhere(store: GoatStore, memory: Memory) -> None:
    key = "3f0c1a52-langmem-id"
    await store.aput(CHAT, key, {"content": "Ana's bike lock code is 4471."})  # LangMem's value shape
    item = await store.aget(CHAT, key)
    assert item.value["text"] == "Ana's bike lock code is 4471." and item.value["role"] == "note"
    assert (await store.asearch(CHAT, query="bike lock"))[0].key == key

    await store.aput(CHAT, key, {"text": "Ana's bike lock code is now 9012."})  # rewritten in place
    assert (await store.aget(CHAT, key)).value["text"] == "Ana's bike lock code is now 9012."
    assert (await store.aget(CHAT, key)).created_at == item.created_at
    [found] = [hit for hit in await store.asearch(CHAT, query="9012") if hit.key == key]
    assert found.value["words"] == ["9012"]
    assert not [hit for hit in await store.asearch(CHAT, query="4471") if "4471" in hit.value["words"]]

    await store.adelete(CHAT, key)
    assert await store.aget(CHAT, key) is None and await memory.entries.of_ids("c1", [key]) == []
    assert key not in {hit.key for hit in await store.asearch(CHAT, query="bike lock")}

    with pytest.raises(ValueError, match="form of a turn's id"):  # a turn is kept verbatim
        await store.aput(CHAT, archive_id("c1", 2), {"text": "We never went to the beach."})
    for bad in ({"text": ""}, {"text": "a", "content": "b"}, {"text": "a", "mood": "glad"}, {"text": 7}):
        with pytest.raises(ValueError):
            await store.aput(CHAT, "note-2", bad)
    assert await store.aget(CHAT, "note-2") is None


async def test_a_note_put_through_the_store_is_injected_by_the_chats_next_turn(store: GoatStore,
                                                                               memory: Memory) -> None:
    await store.aput(CHAT, "3f0c1a52", {"content": "Ana keeps the spare house key under the blue flower pot."})
    runner = TurnRunner(CheckpointedServices(memory.settings, memory))
    state = await runner.inspect("c1", "Where is the spare house key?", user_id="ana", now=START + 10 * DAY)
    assert "3f0c1a52" in [recalled["id"] for recalled in state["l3"]]


async def test_deleting_a_turn_removes_it_where_delete_memory_does(store: GoatStore, memory: Memory) -> None:
    turn = archive_id("c1", 2)
    _, before, _ = await memory.working("c1", 20)
    await store.adelete(CHAT, turn)
    assert await store.aget(CHAT, turn) is None
    assert "frisbee" not in " ".join(hit.value["text"] for hit in await store.asearch(CHAT, query="frisbee"))
    _, after, _ = await memory.working("c1", 20)
    assert len(after) == len(before) - 2 and not any("frisbee" in m["content"] for m in after)  # its L2 too


async def test_namespaces_are_listed_with_prefix_suffix_depth_and_paging(store: GoatStore, memory: Memory) -> None:
    await store.aput(ANA, "dog", {"value": "Rex"})
    await store.aput(("users", "bo", "facts"), "city", {"value": "Lima"})
    await store.aput(("chats", "c2", "memories"), "n", {"text": "Bo's note.", "user_id": "bo"})
    every = [("chats", "c1", "memories"), ("chats", "c2", "memories"), ("users", "ana", "facts"),
             ("users", "bo", "facts")]
    assert await store.alist_namespaces() == every
    assert await store.alist_namespaces(prefix=("users",)) == every[2:]
    assert await store.alist_namespaces(prefix=("chats", "*", "memories")) == every[:2]
    assert await store.alist_namespaces(suffix=("facts",)) == every[2:]
    assert await store.alist_namespaces(max_depth=1) == [("chats",), ("users",)]
    assert await store.alist_namespaces(prefix=("users",), max_depth=2) == [("users", "ana"), ("users", "bo")]
    assert await store.alist_namespaces(limit=2, offset=1) == every[1:3]
    assert await memory.admin.chats_of("bo") == ["c2"]  # the note's user wrote to the chat


async def test_what_goat_does_not_hold_is_refused_not_ignored(store: GoatStore, memory: Memory) -> None:
    for namespace in (("users", "ana"), ("docs", "ana", "facts"), ("chats", "c1", "facts")):
        with pytest.raises(ValueError, match="GOAT's store holds"):
            await store.aget(namespace, "k")
    with pytest.raises(NotImplementedError, match="TTL"):
        await store.abatch([PutOp(CHAT, "n", {"text": "x"}, ttl=5)])
    with pytest.raises(NotImplementedError, match="index"):
        await store.aput(CHAT, "n", {"text": "x"}, index=["text"])
    with pytest.raises(NotImplementedError, match="index"):
        await store.aput(CHAT, "n", {"text": "x"}, index=False)
    with pytest.raises(ValueError, match="one namespace"):
        await store.asearch(("chats",), query="frisbee")
    with pytest.raises(NotImplementedError, match="listed whole"):
        await store.asearch(ANA, query="dog")
    for bad in ({"text": "frisbee"}, {"role": "assistant"}, {"time": "2025-10-10"}, {"time": {"$ne": "2025-10-10"}},
                {"time": {"$gte": "last week"}}):
        with pytest.raises(ValueError):
            await store.asearch(CHAT, filter=bad)
    assert await store.aget(CHAT, "n") is None  # nothing written by a refusal


async def test_a_batch_runs_its_operations_in_order(store: GoatStore) -> None:
    results = await store.abatch([
        PutOp(ANA, "dog", {"value": "Rex"}),
        GetOp(ANA, "dog"),
        PutOp(CHAT, "n", {"text": "The frisbee is in the garage.", "user_id": "ana"}),
        SearchOp(CHAT, query="frisbee", limit=2),
        PutOp(ANA, "dog", None),
        GetOp(ANA, "dog"),
        ListNamespacesOp(match_conditions=(MatchCondition("suffix", ("facts",)),)),
    ])
    assert results[0] is None and results[1].value == {"value": "Rex"}
    assert {item.key for item in results[3]} == {"n", archive_id("c1", 2)}
    assert results[5] is None and results[6] == [ANA]


def test_the_sync_methods_run_on_a_loop_of_the_stores_own(settings: Settings, embeddings) -> None:
    store = GoatStore(Memory(settings, embeddings=embeddings), settings.server)
    try:
        store.put(ANA, "dog", {"value": "Rex"})
        store.put(CHAT, "n", {"text": "The frisbee is in the garage."})
        assert store.get(ANA, "dog").value == {"value": "Rex"}
        assert [item.key for item in store.search(CHAT, query="frisbee")] == ["n"]
        assert store.list_namespaces(prefix=("chats",)) == [CHAT]
        store.delete(CHAT, "n")
        assert store.batch([GetOp(CHAT, "n"), GetOp(ANA, "dog")])[0] is None
    finally:
        store.close()


async def test_the_sync_methods_refuse_to_block_the_stores_loop(store: GoatStore) -> None:
    await store.aget(ANA, "dog")
    with pytest.raises(RuntimeError, match="await the a-methods"):
        store.get(ANA, "dog")
    # From a worker thread (a sync node), they run on the store's loop.
    await store.aput(ANA, "dog", {"value": "Rex"})
    assert (await asyncio.to_thread(store.get, ANA, "dog")).value == {"value": "Rex"}
