"""The archive's encoder: recorded, checked at start, and changed in place by `goat reembed`
(real Redis, real Chroma, both real encoders)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import memorys_redis
from graph.importing.importer import import_transcript
from graph.settings import Settings
from memory.stores.archive_encoder import ENCODER_KEY, REEMBED_DONE_KEY, REEMBED_KEY
from memory.errors import EncoderMismatch
from memory.encoders.embeddings import LocalEmbeddings
from memory.encoders.paired import PairedEncoder
from memory.facade import Memory, measurement_hooks
from memory.settings import DEFAULT_ENCODER
from memory.turns import Exchange, archive_id
from test_cli import GOAT, HANG_GUARD, goat, goat_env, ok
from test_retrieval import NOW, history_jsonl

SPANISH = [
    (9, "Mi perro Toby se escapó del jardín ayer por la tarde.", "Qué susto; ¿ya volvió a casa?"),
    (8, "Estoy aprendiendo a hacer pan de masa madre.", "Paciencia con la fermentación."),
    (7, "El tren a Sevilla salió con dos horas de retraso.", "Qué fastidio de viaje."),
]
ENGLISH = [
    (6, "I planted three San Marzano tomato seedlings on the balcony.", "Give them a deep pot and full sun."),
    (5, "The deployment of service alpha-5675 failed on the database migration.", "Run it in batches."),
]


def own_settings(tmp_path: Path, model: str) -> Settings:
    """Its own embedded Redis: the encoder record is the archive's, not the test session's."""
    return Settings(data_dir=tmp_path / "data", embeddings={"model": model})


async def archive(memory: Memory, tmp_path: Path, chats: dict[str, list]) -> None:
    for chat_id, history in chats.items():
        path = tmp_path / f"{chat_id}.jsonl"
        path.write_text(history_jsonl(chat_id, history), encoding="utf-8")
        await import_transcript(memory, path)
    await measurement_hooks(memory).settle()


async def stored_vectors(memory: Memory, chat_id: str, turns: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The chat's entries' texts, their vectors in Chroma and in the word index."""
    ids = [archive_id(chat_id, n) for n in range(1, turns + 1)]
    store, index = await memory._backends.l3.episodic(), await memory._backends.redis.entry_index()
    found = dict((hit["id"], (hit["content"], vector)) for hit, vector in store.get_with_vectors([chat_id], ids))
    numbers = await index._redis.hmget(index.key(chat_id, "number"), ids)
    in_index = await index.vectors(chat_id, np.array([int(n) for n in numbers]))
    return [found[i][0] for i in ids], np.array([found[i][1] for i in ids]), in_index


async def test_an_archive_records_its_encoder_and_another_one_is_refused_naming_goat_reembed(
        tmp_path, minilm, e5) -> None:
    async with Memory(own_settings(tmp_path, "minilm-l6"), embeddings=minilm) as memory:
        await memory.connect(warm=True)
        await archive(memory, tmp_path, {"es": SPANISH})
        async with memorys_redis(memory) as redis:
            assert await redis.get(ENCODER_KEY) == b"minilm-l6 (8-bit)"
    async with Memory(own_settings(tmp_path, "e5-small"), embeddings=e5) as memory:
        with pytest.raises(EncoderMismatch, match="embedded with minilm-l6.*set to e5-small.*goat reembed"):
            await memory.connect(warm=True)
        assert (await memory._archiver.flush()) == 0  # nothing was waiting, nothing was written


async def test_an_archive_from_before_the_record_is_minilms_and_an_empty_one_takes_the_first_encoder(
        tmp_path, minilm, e5) -> None:
    async with Memory(own_settings(tmp_path, "minilm-l6"), embeddings=minilm) as memory:
        await archive(memory, tmp_path, {"en": ENGLISH})
        async with memorys_redis(memory) as redis:
            await redis.delete(ENCODER_KEY)  # as an archive written before this version
    async with Memory(own_settings(tmp_path, "e5-small"), embeddings=e5) as memory:
        with pytest.raises(EncoderMismatch, match="minilm-l6"):
            await memory.connect(warm=True)

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    async with Memory(own_settings(fresh, "minilm-l6"), embeddings=minilm) as memory:
        await memory.connect(warm=True)
        async with memorys_redis(memory) as redis:
            assert await redis.get(ENCODER_KEY) == b"minilm-l6 (8-bit)"
    # Nothing was written with it: another encoder takes the archive over without a re-embedding.
    async with Memory(own_settings(fresh, "e5-small"), embeddings=e5) as memory:
        await memory.connect(warm=True)
        async with memorys_redis(memory) as redis:
            assert await redis.get(ENCODER_KEY) == b"e5-small"


@pytest.fixture(params=["e5-small", "minilm-l6+e5-small"])
def to(request: pytest.FixtureRequest, e5: LocalEmbeddings, paired: PairedEncoder) -> tuple[str, LocalEmbeddings]:
    """The encoder re-embedded to: e5-small (vectors of the same length as MiniLM's) or both
    side by side (longer: each chat's Chroma collection is rebuilt)."""
    return (request.param, e5 if request.param == "e5-small" else LocalEmbeddings(paired))


async def test_reembed_replaces_every_vector_in_chroma_and_the_word_index_and_keeps_the_words(
        tmp_path, minilm, to) -> None:
    name, target = to
    async with Memory(own_settings(tmp_path, "minilm-l6"), embeddings=minilm) as memory:
        await archive(memory, tmp_path, {"es": SPANISH, "en": ENGLISH})
        before = await memory._finding.reads.lexical_search(["es"], "Sevilla", k=3, max_df_share=1.0)
    async with Memory(own_settings(tmp_path, name), embeddings=target) as memory:
        seen: list[tuple[int, int]] = []
        done = await memory.admin.reembed(lambda finished, total: seen.append((finished, total)))
        assert (done.previous, done.encoder, done.chats, done.entries) == ("minilm-l6", name, 2, 5)
        assert seen[-1] == (5, 5)
        await memory.connect(warm=True)  # no longer refused
        for chat_id, history in (("es", SPANISH), ("en", ENGLISH)):
            texts, in_chroma, in_index = await stored_vectors(memory, chat_id, len(history))
            expected = target.encoder.encode(texts)
            np.testing.assert_allclose(in_chroma, expected, atol=1e-5)
            np.testing.assert_allclose(in_index, expected, atol=2e-3)  # float16 in the index
            index = await memory._backends.redis.entry_index()
            np.testing.assert_allclose((await index.centroid([chat_id])).mean, expected.mean(axis=0), atol=1e-5)
        after = await memory._finding.reads.lexical_search(["es"], "Sevilla", k=3, max_df_share=1.0)
        assert [hit["id"] for hit, *_ in after] == [hit["id"] for hit, *_ in before] == [archive_id("es", 3)]
        # A paraphrase in the chat's language finds its line by meaning now.
        hits = await memory._finding.reads.search(["es"], await memory._finding.ahead.measure("¿Qué pasó con mi mascota?", ["es"]), 3)
        assert hits[0]["id"] == archive_id("es", 1)
        async with memorys_redis(memory) as redis:
            assert await redis.exists(REEMBED_KEY, REEMBED_DONE_KEY) == 0
        again = await memory.admin.reembed()
        assert (again.previous, again.entries) == (name, 0)


class Killed(Exception):
    pass


async def reembed_stopped_after_one_chat(tmp_path: Path, minilm: LocalEmbeddings, name: str,
                                         target: LocalEmbeddings) -> None:
    """Two chats archived with MiniLM, then a re-embedding with ``target`` stopped once one chat is done."""
    async with Memory(own_settings(tmp_path, "minilm-l6"), embeddings=minilm) as memory:
        await archive(memory, tmp_path, {"es": SPANISH, "en": ENGLISH})

    def stop_after_one_chat(finished: int, total: int) -> None:
        raise Killed

    async with Memory(own_settings(tmp_path, name), embeddings=target) as memory:
        with pytest.raises(Killed):
            await memory.admin.reembed(stop_after_one_chat)


async def test_an_interrupted_reembed_refuses_every_start_and_resumes_where_it_stopped(
        tmp_path, minilm, to) -> None:
    name, target = to
    await reembed_stopped_after_one_chat(tmp_path, minilm, name, target)
    for model, encoder in (("minilm-l6", minilm), (name, target)):
        async with Memory(own_settings(tmp_path, model), embeddings=encoder) as memory:
            with pytest.raises(EncoderMismatch, match=f"re-embedding of the archive with {re.escape(name)} is unfinished"):
                await memory.connect(warm=True)
    async with Memory(own_settings(tmp_path, name), embeddings=target) as memory:
        done = await memory.admin.reembed()
        assert done.chats == 1  # the chat finished before the stop is not done again
        await memory.connect(warm=True)
        for chat_id, history in (("es", SPANISH), ("en", ENGLISH)):
            texts, in_chroma, _ = await stored_vectors(memory, chat_id, len(history))
            np.testing.assert_allclose(in_chroma, target.encoder.encode(texts), atol=1e-5)


async def test_minilms_float32_vectors_are_refused_as_an_older_versions_until_goat_reembed_ran(
        tmp_path, minilm) -> None:
    async with Memory(own_settings(tmp_path, "minilm-l6"), embeddings=minilm) as memory:
        await archive(memory, tmp_path, {"en": ENGLISH})
        async with memorys_redis(memory) as redis:
            await redis.set(ENCODER_KEY, "minilm-l6")  # as recorded before MiniLM's matrices were 8-bit
    async with Memory(own_settings(tmp_path, "minilm-l6"), embeddings=minilm) as memory:
        with pytest.raises(EncoderMismatch, match=r"made by an older version \(minilm-l6; now minilm-l6 "
                                                  r"\(8-bit\)\).*run `goat reembed`"):
            await memory.connect(warm=True)
        done = await memory.admin.reembed()
        assert (done.previous, done.encoder, done.entries) == ("minilm-l6", "minilm-l6", len(ENGLISH))
        await memory.connect(warm=True)
        [hit] = await memory._finding.reads.search(["en"], await memory._finding.ahead.measure("tomato seedlings", ["en"]), 1)
        assert hit["id"] == archive_id("en", 1)


async def test_the_pairs_archive_of_float32_minilm_vectors_is_an_older_versions(tmp_path, paired) -> None:
    pair = LocalEmbeddings(paired)
    async with Memory(own_settings(tmp_path, pair.name), embeddings=pair) as memory:
        await archive(memory, tmp_path, {"en": ENGLISH})
        async with memorys_redis(memory) as redis:
            recorded = (await redis.get(ENCODER_KEY)).decode()
            assert recorded.endswith(", MiniLM 8-bit)")
            await redis.set(ENCODER_KEY, recorded.removesuffix(", MiniLM 8-bit)") + ")")  # as before 8 bits
    async with Memory(own_settings(tmp_path, pair.name), embeddings=pair) as memory:
        with pytest.raises(EncoderMismatch, match=r"minilm-l6\+e5-small vectors were made by an older version.*"
                                                  r"run `goat reembed`"):
            await memory.connect(warm=True)


async def test_the_pairs_archive_recorded_with_the_word_tables_reading_is_this_versions(tmp_path, paired) -> None:
    """Older versions recorded a digest of their own reading of languages; each vector carries its
    layout, so such an archive is taken as it is: no `goat reembed`, the same vectors searched."""
    pair = LocalEmbeddings(paired)
    async with Memory(own_settings(tmp_path, pair.name), embeddings=pair) as memory:
        await archive(memory, tmp_path, {"en": ENGLISH, "es": SPANISH})
        _, before, _ = await stored_vectors(memory, "es", len(SPANISH))
        async with memorys_redis(memory) as redis:
            recorded = (await redis.get(ENCODER_KEY)).decode()
            assert "reading" not in recorded
            await redis.set(ENCODER_KEY, recorded.replace("(layout 2", "(layout 2, reading 1a2b3c4d5e6f"))
    async with Memory(own_settings(tmp_path, pair.name), embeddings=pair) as memory:
        await memory.connect(warm=True)
        _, after, _ = await stored_vectors(memory, "es", len(SPANISH))
        np.testing.assert_array_equal(after, before)


async def test_a_reembed_killed_half_way_to_longer_vectors_goes_back_to_the_first_encoder(
        tmp_path, minilm, paired) -> None:
    pair = LocalEmbeddings(paired)
    await reembed_stopped_after_one_chat(tmp_path, minilm, pair.name, pair)  # one chat now holds 1 152-d vectors
    async with Memory(own_settings(tmp_path, "minilm-l6"), embeddings=minilm) as memory:
        done = await memory.admin.reembed()
        assert (done.encoder, done.chats, done.entries) == ("minilm-l6", 2, 5)
        await memory.connect(warm=True)
        for chat_id, history in (("es", SPANISH), ("en", ENGLISH)):
            texts, in_chroma, in_index = await stored_vectors(memory, chat_id, len(history))
            np.testing.assert_allclose(in_chroma, minilm.encoder.encode(texts), atol=1e-5)
            np.testing.assert_allclose(in_index, minilm.encoder.encode(texts), atol=2e-3)  # float16
        [hit] = await memory._finding.reads.search(["en"], await memory._finding.ahead.measure("tomato seedlings", ["en"]), 1)
        assert hit["id"] == archive_id("en", 1)


async def test_a_process_started_before_a_reembed_keeps_its_writes_in_the_outbox_not_in_the_other_space(
        tmp_path, minilm, e5) -> None:
    older = Memory(own_settings(tmp_path, "minilm-l6"), embeddings=minilm)
    await older.connect(warm=True)
    await archive(older, tmp_path, {"es": SPANISH})
    async with Memory(own_settings(tmp_path, "e5-small"), embeddings=e5) as memory:
        await memory.admin.reembed()
    late = "Al final Toby volvió solo a casa por la noche."
    await older.archive([Exchange("es", "alice", len(SPANISH) + 1, NOW.timestamp(), late, "¡Qué alivio!")],
                        NOW.timestamp())
    assert await measurement_hooks(older).settle() == 1  # refused by the check, kept
    await older.aclose()
    async with Memory(own_settings(tmp_path, "e5-small"), embeddings=e5) as memory:
        await memory.connect(warm=True)
        assert await measurement_hooks(memory).settle() == 0
        texts, in_chroma, _ = await stored_vectors(memory, "es", len(SPANISH) + 1)
        assert late in texts[-1]
        np.testing.assert_allclose(in_chroma, e5.encoder.encode(texts), atol=1e-5)


def chat_once(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(GOAT), "chat", "--chat", "chat-0"], env=env, cwd=cwd, input="hola\n",
                          capture_output=True, text=True, timeout=HANG_GUARD)


@pytest.mark.slow
def test_goat_reembed_killed_mid_way_resumes_and_goat_chat_is_refused_until_it_finishes(
        tmp_path, closed_port) -> None:
    data_dir = tmp_path / "data"
    history = [(days - i / 100, f"{user} (nota {i})", reply) for i in range(12) for days, user, reply in SPANISH + ENGLISH]
    chats = {f"chat-{n}": history for n in range(12)}  # 720 entries: half a minute of encoding
    model = {"GOAT_MODEL": "fake-model", "OPENAI_API_KEY": "sk-test-0123456789",
             "OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port}/v1"}
    # A lease of a second: a killed re-embedding's runs out quickly.
    minilm = goat_env(data_dir, GOAT_EMBEDDINGS__MODEL="minilm-l6", GOAT_REDIS__CHAT_LOCK_SECONDS="1", **model)
    upgraded = goat_env(data_dir, GOAT_REDIS__CHAT_LOCK_SECONDS="1", **model)  # the default encoder, as after an upgrade
    path = tmp_path / "chats.jsonl"  # one import of every chat: a goat process costs seconds to start
    path.write_text("".join(history_jsonl(chat_id, history) for chat_id, history in chats.items()), encoding="utf-8")
    ok(goat("import", path, env=minilm, cwd=tmp_path))

    refused = chat_once(upgraded, tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith(
        f"goat: L3 is unavailable: the archive was embedded with minilm-l6, this process is set to {DEFAULT_ENCODER}")
    assert "goat reembed" in refused.stderr

    # Killed once some chats are done (its progress line says so), with no chance to clean up.
    process = subprocess.Popen([str(GOAT), "reembed"], env=upgraded, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    progress = ""
    while not (done := re.search(r"\| *([1-9]\d*)/720", progress)):
        character = process.stderr.read(1)
        assert character, f"goat reembed ended before it was killed: {progress}"
        progress += character
    # One re-embedding at a time: a second is refused, a start is told to wait (side by side).
    second = subprocess.Popen([str(GOAT), "reembed"], env=upgraded, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    third = chat_once(minilm, tmp_path)
    second_told = second.communicate(timeout=HANG_GUARD)[1]
    os.kill(process.pid, signal.SIGKILL)
    process.wait(HANG_GUARD)
    assert int(done.group(1)) < 720, "killed too late to test resuming"
    assert second.returncode == 1 and second_told.strip().splitlines()[-1] == (
        "goat: L3 is unavailable: another `goat reembed` is re-embedding the archive now — wait for it to finish "
        "(its progress bar says how far it is)"), second_told
    assert "`goat reembed` is running it: wait for it to finish" in third.stderr, third.stderr

    assert f"re-embedding of the archive with {DEFAULT_ENCODER} is unfinished" in chat_once(minilm, tmp_path).stderr
    resumed = ok(goat("reembed", env=upgraded, cwd=tmp_path))
    assert f"with {DEFAULT_ENCODER} (was minilm-l6)" in resumed.stdout
    assert int(resumed.stdout.split()[1]) < 720  # the chats done before the kill were not done again
    assert ok(goat("reembed", env=upgraded, cwd=tmp_path)).stdout.strip() == (
        f"the archive is already embedded with {DEFAULT_ENCODER}: nothing to do")
