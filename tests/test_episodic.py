"""L3 episodic store against real Chroma (embedded and server) with real MiniLM embeddings."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings
from conftest import free_port, running_chroma

from memory.encoders.embeddings import LocalEmbeddings
from memory.encoders.encoder import distances
from memory.stores.chroma_file import ChromaFile
from memory.stores.episodic import _ADD_SLICE, EpisodicStore, collection_name
from memory.prompt.budget import LINE_TOKENS, format_recall_line, line_tokens_stamp, stamped_tokens
from memory.prompt.tokens import count_tokens

DAY = 86_400.0
NOW = 1_760_000_000.0  # a fixed "now" keeps timestamps reproducible

DOG = "user: We adopted a golden retriever puppy and named him Biscuit.\nassistant: Biscuit is a lovely name for a dog!"
PASTA = "user: My favourite dish is spaghetti carbonara.\nassistant: A Roman classic: eggs, pecorino, guanciale."
DEPLOY = "user: The staging deploy key is alpha-5675, keep it handy.\nassistant: Noted: alpha-5675 for staging."
TRIP = "user: We are planning a trip to Kyoto in April.\nassistant: Cherry blossom season, good timing."


def entry(chat_id: str, turn: int, content: str, timestamp: float = NOW) -> tuple[str, str, dict[str, Any]]:
    """An archived turn, shaped as the archive node writes it."""
    return (
        f"{chat_id}:turn_{turn:04d}",
        content,
        {
            "chat_id": chat_id,
            "user_id": "u1",
            "turn": turn,
            "timestamp": timestamp,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp)),
            "tags": "l2_full_archive",
            "access_count": 0,
            "last_accessed": timestamp,
        },
    )


def corpus(chat_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [entry(chat_id, turn, content) for turn, content in enumerate([DOG, PASTA, DEPLOY, TRIP], start=1)]


@pytest.fixture
def store(tmp_path: Path, embeddings: LocalEmbeddings) -> EpisodicStore:
    return EpisodicStore.embedded(tmp_path / "chroma", embeddings)


def ids(hits: list[dict[str, Any]]) -> list[str]:
    return [hit["id"] for hit in hits]


# --- embedded persistent client ---------------------------------------------------------


def test_search_finds_closest_first_with_squared_l2_distances(store: EpisodicStore, embeddings) -> None:
    store.upsert("chat-a", corpus("chat-a"))
    query = embeddings.embed_query("What is my dog called?")

    hits = store.search(["chat-a"], [query], k=4)[0]

    assert ids(hits)[0] == "chat-a:turn_0001"
    assert hits[0]["content"] == DOG
    assert set(hits[0]) == {"id", "content", "distance", "timestamp", "metadata"}
    assert hits[0]["timestamp"] == NOW
    assert hits[0]["metadata"]["tags"] == "l2_full_archive"
    distances = [hit["distance"] for hit in hits]
    assert distances == sorted(distances)
    vectors = np.array(embeddings.embed_documents([hit["content"] for hit in hits]))
    expected = 2 - 2 * vectors @ np.array(query)
    np.testing.assert_allclose(distances, expected, atol=1e-4)


def test_search_returns_at_most_k(store: EpisodicStore, embeddings) -> None:
    store.upsert("chat-a", corpus("chat-a"))
    query = embeddings.embed_query("food")

    assert len(store.search(["chat-a"], [query], k=2)[0]) == 2
    assert len(store.search(["chat-a"], [query], k=50)[0]) == 4
    assert store.search(["chat-a"], [query], k=0)[0] == []


def test_upserting_an_id_again_replaces_it(store: EpisodicStore, embeddings) -> None:
    entry_id, _, metadata = entry("chat-a", 1, DOG)
    store.upsert("chat-a", [(entry_id, DOG, metadata)])
    store.upsert("chat-a", [(entry_id, PASTA, metadata)])

    assert store.count("chat-a") == 1
    assert store.get_by_ids(["chat-a"], [entry_id])[0]["content"] == PASTA
    hit = store.search(["chat-a"], [embeddings.embed_query("carbonara")], k=5)[0][0]
    assert hit["content"] == PASTA  # the stored vector was replaced too


def test_chats_are_isolated(store: EpisodicStore, embeddings) -> None:
    group, private = "-1001234567890", "user:42/ü private"  # ids Chroma could not use as names
    store.upsert(group, [entry(group, 1, DOG)])
    store.upsert(private, [entry(private, 1, PASTA), entry(private, 2, TRIP)])
    query = embeddings.embed_query("my dog Biscuit")

    assert ids(store.search([group], [query], k=10)[0]) == [f"{group}:turn_0001"]
    assert all(hit["metadata"]["chat_id"] == private for hit in store.search([private], [query], k=10)[0])
    assert len(store.search([private], [query], k=10)[0]) == 2
    everywhere = store.search(None, [query], k=10)[0]
    assert ids(everywhere)[0] == f"{group}:turn_0001"
    assert {hit["metadata"]["chat_id"] for hit in everywhere} == {group, private}
    assert ids(store.search([group, private], [query], k=10)[0]) == ids(everywhere)
    assert [hit["distance"] for hit in everywhere] == sorted(hit["distance"] for hit in everywhere)
    assert store.chat_ids() == sorted([group, private])


def test_collection_names_are_valid_and_stable() -> None:
    name = collection_name("-100123:ü/x")
    assert name == collection_name("-100123:ü/x") != collection_name("-100124:ü/x")
    assert len(name) == 35 and name.startswith("l3-") and name[3:].isalnum()


def test_chat_id_metadata_comes_from_the_chat_not_the_entry(store: EpisodicStore) -> None:
    entry_id, content, metadata = entry("chat-b", 1, DOG)
    store.upsert("chat-a", [(entry_id, content, metadata)])

    assert store.get_by_ids(["chat-a"], [entry_id])[0]["metadata"]["chat_id"] == "chat-a"
    assert store.chat_ids() == ["chat-a"]


def test_get_by_ids_are_exact_hits(store: EpisodicStore) -> None:
    store.upsert("chat-a", corpus("chat-a"))
    store.upsert("chat-b", [entry("chat-b", 1, "user: is alpha-5675 yours?\nassistant: no")])

    by_id = store.get_by_ids(["chat-a"], ["chat-a:turn_0003", "chat-a:turn_0999"])

    assert ids(by_id) == ["chat-a:turn_0003"]
    assert by_id[0]["content"] == DEPLOY and by_id[0]["distance"] == 0.0 and by_id[0]["timestamp"] == NOW
    assert store.get_by_ids(["chat-b"], ["chat-a:turn_0003"]) == []


def test_get_with_vectors_returns_the_stored_vectors(store: EpisodicStore, embeddings) -> None:
    store.upsert("chat-a", corpus("chat-a"))
    store.upsert("chat-b", [entry("chat-b", 1, PASTA)])

    asked = ["chat-a:turn_0002", "chat-b:turn_0001", "chat-a:turn_0999", "chat-a:turn_0002"]  # a repeat, a missing one
    found = store.get_with_vectors(["chat-a", "chat-b"], asked)

    assert sorted(hit["id"] for hit, _ in found) == ["chat-a:turn_0002", "chat-b:turn_0001"]
    expected = np.asarray(embeddings.embed_documents([PASTA])[0], dtype=np.float32)
    for hit, vector in found:
        assert hit["content"] == PASTA and hit["distance"] == 0.0
        assert vector.shape == (embeddings.encoder.dimensions,) and np.allclose(vector, expected, atol=1e-5)
    # The distance a caller measures from them is the one the vector search reports.
    query = np.asarray(embeddings.embed_query("what pasta do I like?"), dtype=np.float32)
    [searched] = [h for h in store.search(["chat-a"], [query.tolist()], k=4)[0] if h["id"] == "chat-a:turn_0002"]
    [(_, stored)] = store.get_with_vectors(["chat-a"], ["chat-a:turn_0002"])
    assert float(distances(stored[None], query)[0]) == pytest.approx(searched["distance"], abs=1e-4)
    assert store.get_with_vectors(["chat-a"], []) == [] and store.get_with_vectors(["nobody"], ["x"]) == []


def test_bump_access_updates_metadata_without_reembedding(tmp_path: Path, store: EpisodicStore, embeddings) -> None:
    store.upsert("chat-a", corpus("chat-a"))
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"), settings=Settings(anonymized_telemetry=False))
    raw = client.get_collection(collection_name("chat-a"))
    before = raw.get(ids=["chat-a:turn_0001"], include=["embeddings", "documents"])
    hits = store.search(["chat-a"], [embeddings.embed_query("dog")], k=1)[0]

    store.bump_access(hits + hits, now=NOW + 10)  # one entry found twice in a turn counts once
    store.bump_access(hits, now=NOW + 20)  # the hit's own (stale) count is not trusted

    after = raw.get(ids=["chat-a:turn_0001"], include=["embeddings", "documents", "metadatas"])
    assert after["metadatas"][0]["access_count"] == 2
    assert after["metadatas"][0]["last_accessed"] == NOW + 20
    assert after["metadatas"][0]["tags"] == "l2_full_archive"  # other keys kept
    assert after["documents"] == before["documents"]
    np.testing.assert_array_equal(after["embeddings"], before["embeddings"])
    untouched = store.get_by_ids(["chat-a"], ["chat-a:turn_0002"])[0]["metadata"]
    assert untouched["access_count"] == 0


def test_a_collection_rebuilt_elsewhere_is_read_not_taken_for_gone(tmp_path: Path, embeddings) -> None:
    # A process that cached the chat's collection before `goat reembed` rebuilt it (vectors of
    # another length go in a new collection of the same name) reads the new one.
    running, reembedding = (EpisodicStore.embedded(tmp_path / "chroma", embeddings) for _ in range(2))
    running.upsert("chat-a", corpus("chat-a"))
    assert running.count("chat-a") == 4
    entries = reembedding.entries("chat-a")
    reembedding.begin_rebuild("chat-a")
    for half in (entries[:2], entries[2:]):
        reembedding.add_to_rebuild("chat-a", half, np.full((len(half), 4), 0.5, dtype=np.float32))
    assert running.count("chat-a") == 4 and running.chat_ids() == ["chat-a"]  # the old one until the swap
    reembedding.swap_in_rebuild("chat-a")
    [(hit, vector)] = running.get_with_vectors(["chat-a"], ["chat-a:turn_0002"])
    assert hit["content"] == PASTA and vector.tolist() == [0.5, 0.5, 0.5, 0.5]
    assert running.chat_ids() == ["chat-a"] and reembedding.count("chat-a") == 4


def test_a_rebuild_killed_mid_way_is_finished_or_undone_by_the_next(store: EpisodicStore) -> None:
    client = store._client()
    for chat_id in ("swapped", "filled"):
        store.upsert(chat_id, corpus(chat_id))
        aside = client.create_collection(collection_name(chat_id) + "-rebuilt", metadata={"rebuilt": chat_id})
        aside.add(ids=[f"{chat_id}:turn_0001"], documents=[DOG], embeddings=[[0.5, 0.5, 0.5, 0.5]])
    client.delete_collection(collection_name("swapped"))  # killed between deleting the old and renaming
    store.finish_rebuilds()
    # The old one gone: the rebuilt one takes its place. The old one still there: the rebuilt one goes.
    assert sorted(store.chat_ids()) == ["filled", "swapped"]
    assert store.count("swapped") == 1 and store.count("filled") == 4
    assert sorted(c.name for c in client.list_collections()) == sorted(map(collection_name, ["filled", "swapped"]))


def test_data_persists_across_a_new_client(tmp_path: Path, embeddings) -> None:
    path = tmp_path / "chroma"
    EpisodicStore.embedded(path, embeddings).upsert("chat-a", corpus("chat-a"))
    query = embeddings.embed_query("What is my dog called?")
    # A fresh process: in-process clients on one path share a cached system.
    reader = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from memory.encoders.embeddings import LocalEmbeddings\n"
        "from memory.stores.episodic import EpisodicStore\n"
        "store = EpisodicStore.embedded(Path(sys.argv[1]), LocalEmbeddings(name=sys.argv[2]))\n"
        "query = json.load(sys.stdin)\n"
        "print(json.dumps({'chats': store.chat_ids(), 'count': store.count('chat-a'),\n"
        "                  'nearest': store.search(['chat-a'], [query], k=1)[0][0]['id']}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", reader, str(path), embeddings.name],
        input=json.dumps(query),
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=120,
        check=True,
    )

    assert json.loads(result.stdout) == {"chats": ["chat-a"], "count": 4, "nearest": "chat-a:turn_0001"}


def test_unknown_chat_is_empty_and_reads_create_nothing(store: EpisodicStore, embeddings) -> None:
    query = embeddings.embed_query("anything")

    assert store.search(["never-seen"], [query], k=5)[0] == []
    assert store.search(None, [query], k=5)[0] == []
    assert store.get_by_ids(["never-seen"], ["x"]) == []
    assert store.count("never-seen") == 0
    store.bump_access([{"id": "x", "content": "", "distance": 0.0, "timestamp": 0.0, "metadata": {"chat_id": "never-seen"}}], NOW)
    assert store.chat_ids() == []


def test_chat_deleted_by_another_store_is_gone_and_can_be_rewritten(tmp_path: Path, embeddings) -> None:
    worker_a = EpisodicStore.embedded(tmp_path / "chroma", embeddings)
    worker_b = EpisodicStore.embedded(tmp_path / "chroma", embeddings)
    worker_a.upsert("chat-a", corpus("chat-a"))
    query = embeddings.embed_query("dog")
    assert worker_a.search(["chat-a"], [query], k=1)[0]  # worker_a now holds the collection

    worker_b.delete_chat("chat-a")

    assert worker_a.get_by_ids(["chat-a"], ["chat-a:turn_0001"]) == []
    worker_b.upsert("chat-a", [entry("chat-a", 1, TRIP)])  # a new collection under the chat's name
    assert [hit["content"] for hit in worker_a.get_by_ids(["chat-a"], ["chat-a:turn_0001"])] == [TRIP]
    worker_b.delete_chat("chat-a")
    assert worker_a.search(["chat-a"], [query], k=1)[0] == []
    assert worker_a.count("chat-a") == 0
    worker_a.upsert("chat-a", [entry("chat-a", 9, TRIP)])
    assert worker_b.count("chat-a") == 1
    assert worker_a.chat_ids() == ["chat-a"]
    worker_a.delete_chat("chat-a")
    worker_a.delete_chat("chat-a")  # deleting twice is harmless
    assert worker_b.chat_ids() == []


def test_concurrent_writes_from_many_threads(store: EpisodicStore) -> None:
    chats = [f"chat-{n}" for n in range(4)]
    contents = [DOG, PASTA, DEPLOY, TRIP, DOG + " again", PASTA + " again"]
    writes = [(chat, [entry(chat, turn, content)]) for chat in chats for turn, content in enumerate(contents)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda write: store.upsert(*write), writes))

    assert store.chat_ids() == chats
    assert [store.count(chat) for chat in chats] == [len(contents)] * len(chats)


def calls_recorded(monkeypatch: pytest.MonkeyPatch, method: str) -> list[int]:
    """How many entries each call of Chroma's ``Collection.<method>`` is handed, from now on."""
    sizes: list[int] = []
    original = getattr(chromadb.Collection, method)

    def recorded(collection: chromadb.Collection, **kwargs: Any) -> Any:
        sizes.append(len(kwargs["ids"]))
        return original(collection, **kwargs)

    monkeypatch.setattr(chromadb.Collection, method, recorded)
    return sizes


def unit_vectors(count: int) -> np.ndarray:
    vectors = np.random.default_rng(1).standard_normal((count, 8)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_big_upsert_reaches_chroma_a_slice_a_call_and_stores_every_entry(store: EpisodicStore,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Embedded Chroma holds the GIL through a whole add: the event loop waits for each call.
    sizes = calls_recorded(monkeypatch, "upsert")
    count = 2 * _ADD_SLICE + 5
    entries, vectors = [entry("big", turn, f"line {turn}") for turn in range(count)], unit_vectors(count)

    store.upsert("big", entries, vectors.tolist())

    assert sizes == [_ADD_SLICE, _ADD_SLICE, 5]
    assert store.count("big") == count
    assert sorted(ids(store.get_by_ids(["big"], [entry_id for entry_id, _, _ in entries]))) == sorted(
        entry_id for entry_id, _, _ in entries)
    assert [ids(hits) for hits in store.search(["big"], [vectors[0], vectors[-1]], k=1)] == [
        [entries[0][0]], [entries[-1][0]]]


def test_a_big_rebuild_batch_reaches_chroma_a_slice_a_call(store: EpisodicStore,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    count = _ADD_SLICE + 1
    store.upsert("big", [entry("big", turn, f"line {turn}") for turn in range(count)], unit_vectors(count).tolist())
    entries, vectors = store.entries("big"), unit_vectors(count)[::-1].copy()
    sizes = calls_recorded(monkeypatch, "add")

    store.begin_rebuild("big")
    store.add_to_rebuild("big", entries, vectors)
    store.swap_in_rebuild("big")

    assert sizes == [_ADD_SLICE, 1]
    stored = {hit["id"]: vector for hit, vector in store.get_with_vectors(["big"], [hit["id"] for hit in entries])}
    assert len(stored) == count
    assert all(np.allclose(stored[hit["id"]], vector) for hit, vector in zip(entries, vectors, strict=True))


# --- records read from embedded Chroma's file ---------------------------------------------


def chroma_alone(folder: Path, embeddings) -> EpisodicStore:
    """A store on the same data that asks Chroma for every record, as a Chroma server is asked."""
    return EpisodicStore(chromadb.PersistentClient(path=str(folder), settings=Settings(anonymized_telemetry=False)),
                         embeddings)


def test_records_read_from_the_file_are_the_ones_chroma_returns(tmp_path: Path, store: EpisodicStore, embeddings,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kind of value GOAT stores, after each kind of write: the file's reading and Chroma's
    are equal, hit for hit and in the same order, and the file was read (Chroma was not asked)."""
    curated = ("chat-a:memory_1", "Ключ: 金庫 ✓ — 'quoted' \"x\"\n<end>",
               {"user_id": "u1", "timestamp": 1_760_000_000.123456789, "time": "", "tags": "curated_memory,a,b",
                "access_count": 0, "last_accessed": 0.1 + 0.2, "flag": True, "off": False, "big": 2**62})
    store.upsert("chat-a", [*corpus("chat-a"), curated])
    store.upsert("chat-a", [entry("chat-a", 2, PASTA + " (edited)")])  # an upsert merges metadata
    store.bump_access(store.get_by_ids(["chat-a"], ["chat-a:turn_0001"]), now=NOW + 5)
    store.delete_entries("chat-a", ["chat-a:turn_0003"])
    reference = chroma_alone(tmp_path / "chroma", embeddings)
    asked = ["chat-a:memory_1", "chat-a:turn_0004", "chat-a:turn_0003", "chat-a:turn_0001", "chat-a:turn_0002",
             "chat-a:turn_0001", "chat-b:turn_0001"]
    vectors = [embeddings.embed_query(query) for query in ("dog", "a key in a safe", "pasta edited")]
    expected = [reference.search(["chat-a"], [vector], k=10)[0] for vector in vectors]
    expected_by_id = reference.get_by_ids(["chat-a"], asked)

    def refused(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("Chroma was asked for records")

    monkeypatch.setattr(chromadb.Collection, "get", refused)
    assert [store.search(["chat-a"], [vector], k=10)[0] for vector in vectors] == expected
    # A query's spaces in one Chroma query: each vector's hits as if asked alone.
    assert store.search(["chat-a"], vectors, k=10) == expected
    assert store.nearest_ids("chat-a", vectors, 10) == [[(hit["id"], hit["distance"]) for hit in hits]
                                                        for hits in expected]
    read = store.get_by_ids(["chat-a"], asked)
    monkeypatch.undo()
    assert read == expected_by_id
    assert reference.search(["chat-a"], vectors, k=10) == expected
    assert ids(read) == ["chat-a:turn_0001", "chat-a:turn_0002", "chat-a:turn_0004", "chat-a:memory_1"]
    by_id = {hit["id"]: hit for hit in read}
    assert by_id["chat-a:turn_0001"]["metadata"]["access_count"] == 1
    assert by_id["chat-a:turn_0002"]["content"].endswith("(edited)")
    assert by_id["chat-a:memory_1"]["metadata"]["flag"] is True and by_id["chat-a:memory_1"]["metadata"]["off"] is False

    file = ChromaFile(tmp_path / "chroma")
    collection = chroma_alone(tmp_path / "chroma", embeddings)._existing("chat-a").collection
    records = file.records(str(collection.id), asked[:5])
    assert records is not None and list(records) == ids(read)
    assert [records[hit["id"]] for hit in read] == [(hit["content"], hit["metadata"]) for hit in read]
    file.close()


def test_a_record_the_file_cannot_give_as_chroma_would_is_asked_of_chroma(tmp_path: Path, store: EpisodicStore,
                                                                           embeddings) -> None:
    """A write of this process under way (the two SQLite libraries do not see each other's locks),
    an array in an entry's metadata (GOAT writes none, another tool might), or a float too large
    for the file's text to give back exactly: Chroma is asked."""
    store.upsert("chat-a", corpus("chat-a"))
    reference = chroma_alone(tmp_path / "chroma", embeddings)
    reference._existing("chat-a").collection.update(
        ids=["chat-a:turn_0002", "chat-a:turn_0003"],
        metadatas=[{"labels": ["x", "y"]}, {"huge": 1.7976931348623157e308}])
    asked = ["chat-a:turn_0001", "chat-a:turn_0002", "chat-a:turn_0003"]
    file = ChromaFile(tmp_path / "chroma")
    collection_id = str(reference._existing("chat-a").collection.id)

    records = file.records(collection_id, asked)
    assert records["chat-a:turn_0002"] is None and records["chat-a:turn_0003"] is None
    assert records["chat-a:turn_0001"] is not None
    read = store.get_by_ids(["chat-a"], asked)
    assert read == reference.get_by_ids(["chat-a"], asked) and read[1]["metadata"]["labels"] == ["x", "y"]
    assert read[2]["metadata"]["huge"] == 1.7976931348623157e308
    with file.access.writing():  # the same file's one lock, whichever store holds it
        assert file.records(collection_id, asked) is None
        assert store.get_by_ids(["chat-a"], asked) == read
        vector = embeddings.embed_query("pasta")
        assert store.search(["chat-a"], [vector], k=4)[0] == reference.search(["chat-a"], [vector], k=4)[0]
    assert file.records(collection_id, asked) is not None
    file.close()


def test_closing_the_file_while_threads_read_it_waits_for_their_reads(tmp_path: Path, store: EpisodicStore) -> None:
    """A connection closed under a read in another thread would crash the process (SQLite's);
    reads after a close connect again."""
    store.upsert("chat-a", corpus("chat-a"))
    file = ChromaFile(tmp_path / "chroma")
    collection_id = str(chroma_alone(tmp_path / "chroma", None)._existing("chat-a").collection.id)
    asked = [identifier for identifier, _, _ in corpus("chat-a")]

    def read(_: int) -> int:
        return sum(len(file.records(collection_id, asked) or {}) for _ in range(200))

    with ThreadPoolExecutor(max_workers=4) as pool:
        reads = pool.map(read, range(4))
        for _ in range(100):
            file.close()
        assert sum(reads) > 0
    assert list(file.records(collection_id, asked)) == asked
    file.close()


def test_http_rejects_urls_that_are_not_chroma_servers(embeddings) -> None:
    for url in ("localhost:8000", "redis://127.0.0.1:6379", "http://"):
        with pytest.raises(ValueError, match="Chroma server URL"):
            EpisodicStore.http(url, embeddings)


# --- Chroma server (client/server path) -------------------------------------------------


@pytest.mark.slow
def test_http_store_upserts_searches_and_isolates_chats(chroma_url: str, embeddings) -> None:
    store = EpisodicStore.http(chroma_url, embeddings)
    store.heartbeat()
    store.upsert("http-a", corpus("http-a"))
    store.upsert("http-b", [entry("http-b", 1, "user: alpha-5675 is mine\nassistant: ok", NOW - DAY)])
    query = embeddings.embed_query("What is my dog called?")

    hits = store.search(["http-a"], [query], k=4)[0]

    assert ids(hits)[0] == "http-a:turn_0001"
    vectors = np.array(embeddings.embed_documents([hit["content"] for hit in hits]))
    np.testing.assert_allclose([hit["distance"] for hit in hits], 2 - 2 * vectors @ np.array(query), atol=1e-4)
    assert {hit["metadata"]["chat_id"] for hit in hits} == {"http-a"}
    assert {hit["metadata"]["chat_id"] for hit in store.search(None, [query], k=10)[0]} >= {"http-a", "http-b"}
    assert ids(store.get_by_ids(["http-a", "http-b"], ["http-a:turn_0003", "http-b:turn_0001"])) == [
        "http-a:turn_0003",
        "http-b:turn_0001",
    ]
    store.bump_access(hits[:1], NOW + 1)
    assert store.get_by_ids(["http-a"], [hits[0]["id"]])[0]["metadata"]["access_count"] == 1

    reconnected = EpisodicStore.http(chroma_url, embeddings)
    assert reconnected.count("http-a") == 4
    reconnected.delete_chat("http-a")
    assert store.search(["http-a"], [query], k=4)[0] == []


@pytest.mark.slow
def test_heartbeat_raises_when_the_server_is_gone(tmp_path: Path, embeddings) -> None:
    with running_chroma(tmp_path / "server") as url:
        store = EpisodicStore.http(url, embeddings)
        store.upsert("chat-a", corpus("chat-a")[:1])
        store.heartbeat()

    with pytest.raises(ConnectionError, match="Chroma is unreachable"):
        store.heartbeat()
    never_there = EpisodicStore.http(f"http://127.0.0.1:{free_port()}", embeddings)  # connects lazily
    with pytest.raises(ConnectionError, match="Chroma is unreachable"):
        never_there.heartbeat()


def test_an_entry_stores_the_tokens_of_the_line_it_is_recalled_as(store: EpisodicStore) -> None:
    """Counted as it is written, so that a turn packing it need not; rewritten with its content."""
    store.upsert("c", [("a", "user: where is the vet?\nassistant: on Elm street", {"timestamp": 1_700_000_000.0}),
                       ("b", "user: Где ветеринар?", {"timestamp": 1_700_000_060.0}), ("c", "no time", {})])
    hits = {hit["id"]: hit for hit in store.get_by_ids(["c"], ["a", "b", "c"])}
    for entry_id in ("a", "b"):
        line = format_recall_line(hits[entry_id])
        assert hits[entry_id]["metadata"][LINE_TOKENS] == line_tokens_stamp(line, count_tokens(line))
    assert LINE_TOKENS not in hits["c"]["metadata"]
    store.upsert("c", [("a", "user: where is the vet now?", {"timestamp": 1_700_000_000.0})])
    [edited] = store.get_by_ids(["c"], ["a"])
    assert stamped_tokens(edited, format_recall_line(edited)) == count_tokens(format_recall_line(edited))
    store.upsert("c", [("c", "no time, rewritten", {LINE_TOKENS: hits["a"]["metadata"][LINE_TOKENS]})])
    [untimed] = store.get_by_ids(["c"], ["c"])
    assert LINE_TOKENS not in untimed["metadata"]
