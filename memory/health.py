"""The doctor's checks: each backend reachable or not, and what each layer holds for a chat
and a user. How each backend is set up, in words, is the faces' (``bot/doctor.py``)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ResponseError

from memory.credentials import without_credentials
from memory.disk_failures import refuses_writes
from memory.errors import BackendUnavailable
from memory.stores.archive import Archive
from memory.settings import MemorySettings
from memory.stores.archive_encoder import ArchiveEncoder
from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import PREFIX, RedisBackend

# What `goat doctor` writes (and deletes) to see that Redis keeps writes: larger than a memory
# page, since on a full disk a short append may still fit in the last page of Redis's file.
_PROBE_KEY = f"{PREFIX}:doctor:probe"
_PROBE_BYTES = 16 * 1024


@dataclass(frozen=True)
class BackendHealth:
    name: str  # redis, chroma, encoder or facts
    ok: bool
    detail: str
    fix: str = ""  # what the backend's own error advises, when it does


@dataclass(frozen=True)
class Health:
    backends: list[BackendHealth]
    # For the chat and user asked about, what each layer holds (a layer whose backend is
    # down is left out): l1_facts, l2_turns, l3_entries, words_indexed_turns, outbox_waiting.
    layers: dict[str, int]


async def check_health(settings: MemorySettings, redis: RedisBackend, l3: L3Backend, encoder: ArchiveEncoder,
                       archiver: Archive, chat_id: str | None = None, user_id: str | None = None, *,
                       unchecked: Collection[str] = ()) -> Health:
    """Each backend: reachable? With a chat and a user, also what each layer holds for them.

    Args:
        settings: how the backends are set up (where Redis keeps its files, whether Letta keeps the facts).
        redis, l3, encoder: the backends checked.
        archiver: what counts the turns indexed and waiting in the outbox.
        chat_id: the chat whose layers to count (with ``user_id``).
        user_id: the user whose facts to count.
        unchecked: backends not to check ("redis", "chroma", "encoder", "facts"): their settings
            are invalid. What needs one of them is not checked either: the encoder needs Redis
            and Chroma, facts kept in Redis need Redis.

    Returns:
        The backends checked, and the layers' counts.
    """
    skipped = set(unchecked)
    if "redis" in skipped:
        skipped |= {"encoder"} if settings.letta.url else {"encoder", "facts"}
    if "chroma" in skipped:
        skipped.add("encoder")
    report = []
    if "redis" not in skipped:
        report.append(await _redis_health(settings, redis))
    if "chroma" not in skipped:
        report.append(await _chroma_health(l3))
    if "encoder" not in skipped and "chroma" in {backend.name for backend in report if backend.ok}:
        try:
            await encoder.embeddings()
            report.append(BackendHealth("encoder", True, "the archive's vectors are its own"))
        except BackendUnavailable as exc:
            report.append(BackendHealth("encoder", False, exc.detail, exc.fix))
    if "facts" not in skipped:
        report.append(await _facts_health(redis))
    up = {backend.name for backend in report if backend.ok}
    return Health(report, await _layers(redis, l3, archiver, chat_id, user_id, up) if chat_id and user_id else {})


async def _redis_health(settings: MemorySettings, redis: RedisBackend) -> BackendHealth:
    try:
        client = await redis.client()
        info = await client.info("server")
        if unkept := await _persistence_problem(client):
            disk = ("the server's disk (its log says why)" if settings.redis.url
                    else f"the disk of {Path(settings.data_dir) / 'redis'}")
            return BackendHealth("redis", False, f"cannot keep what is written: {unkept}", f"free space on {disk}")
        return BackendHealth("redis", True, f"redis {info.get('redis_version')}")
    except BackendUnavailable as exc:
        return BackendHealth("redis", False, exc.detail, exc.fix)
    except Exception as exc:
        return BackendHealth("redis", False, without_credentials(str(exc)))


async def _persistence_problem(redis: Redis | RedisCluster) -> str:
    """Why Redis does not keep what is written to it ("" when it does): writes refused
    because it could not write to its files (MISCONF), or its last write to its append-only
    file or RDB snapshot failed. Any other error of the probe write is raised."""
    try:
        await redis.set(_PROBE_KEY, b"\0" * _PROBE_BYTES)
        await redis.delete(_PROBE_KEY)
        persistence = await redis.info("persistence")
    except ResponseError as exc:
        if refuses_writes(exc):
            return str(exc)
        raise
    if persistence.get("aof_last_write_status") == "err":
        return "its last write to its append-only file failed"
    if persistence.get("rdb_last_bgsave_status") == "err":
        return "its last RDB snapshot failed"
    return ""


async def _chroma_health(l3: L3Backend) -> BackendHealth:
    try:
        store = await l3.episodic()
        chats = await l3.run_blocking(store.chat_ids)
        return BackendHealth("chroma", True, f"{len(chats)} chat(s) archived")
    except BackendUnavailable as exc:  # its detail alone: its advice, to run this check, is no fix here
        return BackendHealth("chroma", False, exc.detail)
    except Exception as exc:
        return BackendHealth("chroma", False, without_credentials(str(exc)))


async def _facts_health(redis: RedisBackend) -> BackendHealth:
    try:
        return BackendHealth("facts", True, await (await redis.facts()).check())
    except Exception as exc:
        return BackendHealth("facts", False, without_credentials(f"{type(exc).__name__}: {exc}"))


async def _layers(redis: RedisBackend, l3: L3Backend, archiver: Archive, chat_id: str, user_id: str,
                  up: set[str]) -> dict[str, int]:
    layers: dict[str, int] = {}
    if "facts" in up:
        layers["l1_facts"] = len(await (await redis.facts()).get_all(user_id))
    if "redis" in up:
        [(indexed, archived)] = await archiver.indexer.index_progress([chat_id])
        layers["l2_turns"], layers["words_indexed_turns"] = archived, indexed
        layers["outbox_waiting"] = await archiver.waiting(chat_id)
    if "chroma" in up:
        store = await l3.episodic()
        layers["l3_entries"] = await l3.run_blocking(store.count, chat_id)
    return layers
