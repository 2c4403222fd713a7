"""A chat's archive as LangChain's vector store (``MemoryScope.vector_store``, docs/langchain.md), on
real Redis and Chroma (embedded, and a ``chroma run`` server) with the real encoder: its results
are GOAT's own search by meaning, it reaches its own chat alone (with server tokens, its caller's
chats alone), every write is refused and leaves the archive as it was, and the page's example runs
as written after ``goat demo``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.documents import Document

from bot.demo.bundled import CHAT_ID as DEMO, conversation
from graph.checkpoint import CheckpointedServices
from graph.importing.importer import import_turns, transcript_of
from graph.server.vector_store import served_vector_store
from graph.settings import Settings
from memory.errors import ArchiveReadOnly
from memory.facade import ArchiveVectorStore, Memory, measurement_hooks
from memory.turns import ImportedTurn
from nodes.services import Services
from bench.support.processes import GOAT_SCRIPT

REPO = Path(__file__).resolve().parents[1]
START = 1_760_000_000  # 2025-10-09T08:53:20Z
ANA, BO = "ana", "bo"
GARDEN, WORK = "ana-garden", "bo-work"  # Ana's chat and Bo's: both speak of dogs and of trips
SAID_IN = {
    GARDEN: ["I planted three San Marzano tomato seedlings on the balcony.",
             "My dog Rex dug up the basil again this morning.",
             "The tomatoes need staking now, they are a metre tall.",
             "We are driving to the coast next weekend with the dog.",
             "I bought a rain barrel to water the garden in summer.",
             "The roses by the gate finally bloomed, deep red ones.",
             "Rex hates the vacuum cleaner but loves the garden hose.",
             "Slugs ate half of the lettuce overnight, I need beer traps."],
    WORK: ["Our deploy of service alpha-5675 failed again on Tuesday.",
           "My dog Luna sleeps under my desk while I work from home.",
           "The quarterly review with the board is on the 14th.",
           "I fly to Berlin for the conference next Thursday."],
}
QUESTIONS = ["What is my dog called?", "How are the tomato plants doing?", "Where are we going next weekend?",
             "what pests are in the garden", "Which flowers bloomed?"]
K = 5
ROMANIAN = re.compile("[ăâîșțĂÂÎȘȚ]")  # the demo chat's Romanian evening: each of its lines holds one


def exchange(key: str, said: str, at: float, user_id: str) -> ImportedTurn:
    return ImportedTurn(key, user_id, tuple({"role": role, "content": text, "timestamp": at, "user_id": user_id}
                                            for role, text in (("user", said), ("assistant", "Noted."))))


async def archived(settings: Settings, embeddings) -> Memory:
    """A memory holding Ana's chat and Bo's, imported as `goat import` imports and written to Chroma."""
    memory = Memory(settings, embeddings=embeddings)
    for chat_id, user_id in ((GARDEN, ANA), (WORK, BO)):
        await memory.entries.import_turns(chat_id, [exchange(f"{chat_id}-{n}", said, START + n * 3600, user_id)
                                                   for n, said in enumerate(SAID_IN[chat_id])])
    assert await measurement_hooks(memory).settle() == 0
    return memory


@pytest.fixture
async def memory(settings: Settings, embeddings):
    memory = await archived(settings, embeddings)
    yield memory
    await memory.aclose()


@pytest.fixture
async def garden(memory: Memory) -> ArchiveVectorStore:
    return await memory.scope(GARDEN, ANA).vector_store()


def ids(documents: list[Document]) -> list[str]:
    return [document.id for document in documents]


async def test_its_results_are_goats_own_search_by_meaning(memory: Memory, garden: ArchiveVectorStore,
                                                             embeddings) -> None:
    # Chroma's distance with GOAT's query vector: half of GOAT's 2 − 2·q·p in inner-product space.
    scale = 2.0 if embeddings.encoder.collection_space == "ip" else 1.0
    for question in QUESTIONS:
        goat = await measurement_hooks(memory).nearest([GARDEN], question, K)
        found = await garden.asimilarity_search_with_score(question, k=K)
        assert ids([document for document, _ in found]) == [hit["id"] for hit in goat], question
        assert [scale * distance for _, distance in found] == pytest.approx([hit["distance"] for hit in goat],
                                                                             abs=1e-5)
        assert ids(garden.similarity_search(question, k=K)) == [hit["id"] for hit in goat]
        assert ids(await garden.as_retriever(search_kwargs={"k": K}).ainvoke(question)) == [hit["id"] for hit in goat]
    [rex] = garden.similarity_search("Who dug up the basil?", k=1)
    assert rex.page_content == f"user: {SAID_IN[GARDEN][1]}\nassistant: Noted."
    assert rex.id == f"{GARDEN}:turn_0002" and rex.metadata["user_id"] == ANA and rex.metadata["chat_id"] == GARDEN


async def test_in_a_chat_of_two_languages_a_question_meets_the_lines_of_its_own(settings: Settings,
                                                                                 embeddings) -> None:
    """The demo chat (English, and a Romanian evening): a Romanian question's results are GOAT's;
    an English one's are GOAT's English lines, in GOAT's order, and no Romanian line."""
    async with Memory(settings, embeddings=embeddings) as memory:
        await import_turns(memory, transcript_of(conversation()))
        assert await measurement_hooks(memory).settle() == 0
        demo = await memory.scope(DEMO, "demo-user").vector_store()
        for question in ["Ce rețetă de ciorbă mi-a dat mama?", "Ce am mâncat de Bobotează?"]:
            assert ids(demo.similarity_search(question, k=K)) == [
                hit["id"] for hit in await measurement_hooks(memory).nearest([DEMO], question, K)]
        for question in ["What's the name of my dog's vet again?", "hi, how are you?", "When do I fly to Lisbon?"]:
            goat = await measurement_hooks(memory).nearest([DEMO], question, K)
            english = [hit["id"] for hit in goat if not ROMANIAN.search(hit["content"])]
            found = demo.similarity_search(question, k=K)
            assert ids(found)[:len(english)] == english, question
            assert not [document for document in found if ROMANIAN.search(document.page_content)], question


async def test_it_reaches_its_own_chat_alone(settings: Settings, embeddings) -> None:
    """Even where a turn would recall every chat (``memory.scope = "global"``): it is the chat's archive."""
    every_chat = settings.model_copy(update={"memory": settings.memory.model_copy(update={"scope": "global"})})
    memory = await archived(every_chat, embeddings)
    try:
        garden = await memory.scope(GARDEN, ANA).vector_store()
        theirs = [f"{WORK}:turn_{n + 1:04d}" for n in range(len(SAID_IN[WORK]))]
        for question in ["Luna sleeps under my desk", "alpha-5675 deploy failed", "What is my dog called?"]:
            found = garden.similarity_search(question, k=100)
            assert sorted(ids(found)) == sorted(f"{GARDEN}:turn_{n + 1:04d}" for n in range(len(SAID_IN[GARDEN])))
            assert {document.id.partition(":")[0] for document in garden.max_marginal_relevance_search(
                question, k=100, fetch_k=100)} == {GARDEN}
            assert garden.similarity_search(question, k=5, filter={"chat_id": WORK}) == []
        assert garden.get_by_ids(theirs) == []
        work = await memory.scope(WORK, BO).vector_store()
        assert sorted(ids(await work.asimilarity_search("dog", k=100))) == theirs
    finally:
        await memory.aclose()


async def test_similarity_and_maximal_marginal_relevance_searches(garden: ArchiveVectorStore) -> None:
    question = "How are the tomato plants doing?"
    nearest = ids(garden.similarity_search(question, k=8))
    chosen = garden.max_marginal_relevance_search(question, k=3, fetch_k=8)
    assert len(set(ids(chosen))) == 3 and set(ids(chosen)) <= set(nearest) and chosen[0].id == nearest[0]
    # All relevance and no diversity: the nearest, in their order.
    assert ids(garden.max_marginal_relevance_search(question, k=3, fetch_k=8, lambda_mult=1.0)) == nearest[:3]
    retriever = garden.as_retriever(search_type="mmr", search_kwargs={"k": 3, "fetch_k": 8})
    assert ids(retriever.invoke(question)) == ids(chosen) == ids(await retriever.ainvoke(question))
    scored = garden.similarity_search_with_relevance_scores(question, k=3)
    assert ids([document for document, _ in scored]) == nearest[:3]
    assert [score for _, score in scored] == sorted((score for _, score in scored), reverse=True)


async def test_every_write_is_refused_and_nothing_is_written(memory: Memory, garden: ArchiveVectorStore) -> None:
    before = garden.get()
    nearest = [hit["id"] for hit in await measurement_hooks(memory).nearest([GARDEN], "dog", K)]
    note = Document(page_content="My cat is called Miso.", id=f"{GARDEN}:turn_0001")
    writes = [lambda: garden.add_texts(["My cat is called Miso."]), lambda: garden.add_documents([note]),
              lambda: garden.update_document(note.id, note), lambda: garden.delete([note.id]),
              lambda: garden.delete_collection(), lambda: garden.reset_collection(), lambda: garden.fork("copy"),
              lambda: ArchiveVectorStore.from_documents([note])]
    for write in writes:
        with pytest.raises(ArchiveReadOnly, match="goat import"):
            write()
    for write in (garden.aadd_documents([note]), garden.aadd_texts(["My cat is called Miso."]),
                  garden.adelete([note.id])):
        with pytest.raises(ArchiveReadOnly):
            await write
    assert garden.get() == before
    assert [hit["id"] for hit in await measurement_hooks(memory).nearest([GARDEN], "dog", K)] == nearest
    assert garden.similarity_search("What is my cat called?", k=1)[0].page_content != "My cat is called Miso."
    assert isinstance(ArchiveReadOnly(), NotImplementedError)  # as LangChain's own stores refuse a write


async def test_what_goat_deletes_or_archives_later_it_finds_as_goat_does(memory: Memory,
                                                                         garden: ArchiveVectorStore) -> None:
    """No copy of its own: an entry deleted through GOAT's door is gone from it, and a note kept after
    it was made is found, by the same vector store."""
    [basil] = garden.similarity_search("Who dug up the basil?", k=1)
    assert await memory.entries.delete(GARDEN, basil.id)
    assert basil.id not in ids(garden.similarity_search("Who dug up the basil?", k=100))
    assert garden.get_by_ids([basil.id]) == []
    note = await memory.scope(GARDEN, ANA).store("The plumber comes on Friday at nine.")
    assert garden.similarity_search("When does the plumber come?", k=1)[0].id == note


async def test_a_chat_with_nothing_archived_has_no_vector_store_yet(memory: Memory) -> None:
    with pytest.raises(LookupError, match="'new-chat' has no archive yet"):
        await memory.scope("new-chat", ANA).vector_store()
    assert await memory.admin.chats_of(ANA) == [GARDEN]  # and asking made no chat of it


ALICE_TOKEN, BOB_TOKEN = "alice-token-" + "a" * 20, "bob-token-" + "b" * 20


@pytest.mark.parametrize("tokens", [{ANA: ALICE_TOKEN, BO: BOB_TOKEN}, {}], ids=["tokens", "developer"])
async def test_on_the_server_a_caller_reaches_their_own_chats_alone(settings: Settings, embeddings, tokens,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    served = settings.model_copy(update={"server": settings.server.model_copy(update={"tokens": tokens})})
    services = CheckpointedServices(served, await archived(served, embeddings))
    monkeypatch.setattr(Services, "_server_instance", services)  # the server's one set of services

    def run(caller: str | None, chat_id: str) -> dict:
        auth = {} if caller is None else {"langgraph_auth_user_id": caller}
        return {"configurable": {"thread_id": chat_id, **auth}}

    try:
        own = await served_vector_store(run(ANA, GARDEN))
        assert {document.id.partition(":")[0] for document in own.similarity_search("dog", k=20)} == {GARDEN}
        if tokens:
            for caller, chat_id in ((ANA, WORK), (BO, GARDEN), (None, GARDEN), (ANA, "no-ones-chat")):
                with pytest.raises(PermissionError, match="not one of yours"):
                    await served_vector_store(run(caller, chat_id))
        else:  # one developer on a loopback `langgraph dev` names any chat, as the Store lets them
            assert ids((await served_vector_store(run("developer", WORK))).similarity_search("Luna", k=1)) == [
                f"{WORK}:turn_0002"]
    finally:
        await services.aclose()


@pytest.mark.slow
async def test_on_a_chroma_server_it_reads_the_collections_goat_writes(tmp_path: Path, redis_url: str,
                                                                       chroma_url: str, embeddings) -> None:
    settings = Settings(data_dir=tmp_path, redis={"url": redis_url}, chroma={"url": chroma_url})
    memory = await archived(settings, embeddings)
    try:
        garden = await memory.scope(GARDEN, ANA).vector_store()
        for question in QUESTIONS:
            assert ids(garden.similarity_search(question, k=K)) == [
                hit["id"] for hit in await measurement_hooks(memory).nearest([GARDEN], question, K)]
        assert {document.metadata["chat_id"] for document in garden.similarity_search("Luna", k=50)} == {GARDEN}
        with pytest.raises(ArchiveReadOnly):
            garden.add_texts(["My cat is called Miso."])
        assert len(garden.get()["ids"]) == len(SAID_IN[GARDEN])
    finally:
        await memory.aclose()


def langchain_example() -> str:
    """The Python block of docs/langchain.md, as a reader copies it."""
    page = (REPO / "docs" / "langchain.md").read_text(encoding="utf-8")
    return page.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow
def test_the_pages_example_runs_as_written_after_goat_demo(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("OPENAI_", "GOAT_"))}
    env.update(GOAT_DATA_DIR=str(tmp_path / ".goat"), ANONYMIZED_TELEMETRY="False")  # make demo's folder, here
    demo = subprocess.run([str(GOAT_SCRIPT), "demo"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert demo.returncode == 0, demo.stderr
    script = tmp_path / "retriever.py"
    script.write_text(langchain_example(), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    first, second, answer = done.stdout.splitlines()
    assert first.startswith("demo:turn_0007 2025-") and "Dr. Ioana Marinescu" in first
    assert second.startswith("demo:turn_") and answer == "Dr. Ioana Marinescu, at Vet Care Floreasca."


async def test_it_still_answers_once_memory_has_closed_and_reopened_its_store(memory: Memory,
                                                                               garden: ArchiveVectorStore) -> None:
    """An import closes L3 every so many exchanges (Chroma keeps what it wrote in memory): a vector
    store made before reads through the client open then."""
    before = ids(garden.similarity_search("Who dug up the basil?", k=K))
    await memory._backends.l3.release()
    assert ids(garden.similarity_search("Who dug up the basil?", k=K)) == before
    assert ids(garden.get_by_ids([f"{GARDEN}:turn_0002"])) == [f"{GARDEN}:turn_0002"]
    # The chat's collection made again since (forgotten, then archived anew): asked for again.
    l3 = memory._backends.l3
    store = await l3.episodic()
    await l3.call(store.delete_chat, GARDEN)
    await memory.entries.import_turns(GARDEN, [exchange("again", "Rex dug up the basil again.", START, ANA)])
    with pytest.raises(LookupError, match="ask for it again"):
        garden.similarity_search("Who dug up the basil?", k=K)
