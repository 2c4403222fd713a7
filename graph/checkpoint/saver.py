"""A LangGraph checkpointer on plain Redis (≥ 6.2): hashes, sorted sets and Lua, no modules.

``RedisCheckpointSaver`` keeps a thread's checkpoints, pending writes and channel values in
three keys (laid out in ``scripts``, whose Lua does every write and ``get_tuple``) and drops
the turns older than ``keep_turns``. Each operation is a generator of round trips, run on
the sync or the async client (``batching``).
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import AsyncIterator, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote

import redis
import redis.asyncio
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    SerializerProtocol,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.client import Pipeline

from graph.checkpoint.batching import Batch, Call, Query, RoundTrips, Scan, Steps
from graph.checkpoint.scripts import GET, PRUNE, PUT, PUT_WRITES, REWRITE
from memory.facade import async_client, glob_escaped, sync_client

DEFAULT_PREFIX = "goat:ckpt"
DEFAULT_KEEP_TURNS = 2

_PAGE_SIZE = 50  # checkpoints read per round trip while listing
_SCAN_COUNT = 500
_WRITE_FIELD = b"write:"
_PRUNE_STRATEGIES = ("keep_latest", "delete")  # those ``prune`` accepts

# ---------------------------------------------------------------------- keys


@functools.lru_cache(maxsize=4096)  # the same namespaces and channel names, over and over
def _quoted(text: str) -> str:
    return quote(text, safe="")


def _pack(labels: Sequence[str], data: bytes) -> bytes:
    """``label:label:…:data`` — the labels are quoted, so the raw data can hold any byte."""
    return "".join(_quoted(label) + ":" for label in labels).encode() + data


def _unpack(raw: bytes, label_count: int) -> tuple[list[str], bytes]:
    *labels, data = raw.split(b":", label_count)
    return [unquote(label.decode()) for label in labels], data


_EMPTY_VALUE = _pack(["empty"], b"")  # a channel in new_versions without a value (as in the Postgres saver)


def _member(ns: str, checkpoint_id: str) -> str:
    return f"{_quoted(ns)}:{checkpoint_id}"


def _parse_member(raw: bytes) -> tuple[str, str]:
    quoted_ns, _, checkpoint_id = raw.decode().partition(":")
    return unquote(quoted_ns), checkpoint_id


def _namespace_range(ns: str, before_id: str | None = None) -> tuple[str, str]:
    """ZREVRANGEBYLEX bounds (max, min) of a namespace's members, older than ``before_id``
    if given. A quoted namespace has no ':', and ';' sorts right after ':'."""
    quoted = _quoted(ns)
    newest = f"({quoted}:{before_id}" if before_id is not None else f"({quoted};"
    return newest, f"[{quoted}:"


@functools.lru_cache(maxsize=16384)  # a put lists every channel's field, mostly the previous put's
def _blob_field(ns: str, channel: str, version: str | int | float) -> str:
    return f"{_quoted(ns)}:{_quoted(channel)}:{quote(str(version), safe='')}"


@dataclass(frozen=True)
class _Thread:
    """The key names of one thread."""

    prefix: str
    thread_id: str

    @property
    def _base(self) -> str:
        return f"{self.prefix}:{{{_quoted(self.thread_id)}}}"

    @property
    def key_pattern(self) -> str:
        return f"{glob_escaped(self._base)}:*"

    @property
    def index(self) -> str:
        return f"{self._base}:checkpoints"

    @property
    def blobs(self) -> str:
        return f"{self._base}:blobs"

    @property
    def records(self) -> str:
        """What a checkpoint's key adds its member to."""
        return f"{self._base}:checkpoint:"

    def checkpoint(self, ns: str, checkpoint_id: str) -> str:
        return self.records + _member(ns, checkpoint_id)

    def config(self, ns: str, checkpoint_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": self.thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}


@dataclass
class _Stored:
    """A stored checkpoint as read for get_tuple / list."""

    ns: str
    checkpoint_id: str
    record: dict[bytes, bytes]
    metadata: CheckpointMetadata


def _matches(metadata: Mapping[str, Any], wanted: dict[str, Any] | None) -> bool:
    return not wanted or all(metadata.get(key) == value for key, value in wanted.items())


class RedisCheckpointSaver(BaseCheckpointSaver[str]):
    """Checkpoints, pending writes and channel values of LangGraph threads in plain Redis.

    Build it with ``from_url`` (or pass both clients, made with ``decode_responses=False``);
    close it with ``close()`` / ``aclose()`` or use it as a (async) context manager. It works
    alike on one server and on a Redis Cluster (a thread's keys share a hash slot).

    Args:
        client: The sync client, for the sync API (``redis.Redis`` or ``redis.RedisCluster``).
        async_client: The async client, for the async API (``redis.asyncio.Redis`` or ``RedisCluster``).
        prefix: The start of every key.
        keep_turns: How many of a thread's latest turns to keep; ``None`` keeps all.
        serde: The serializer of checkpoints, metadata, channel values and writes.
    """

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        async_client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
        *,
        prefix: str = DEFAULT_PREFIX,
        keep_turns: int | None = DEFAULT_KEEP_TURNS,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        if keep_turns is not None and (isinstance(keep_turns, bool) or keep_turns < 1):
            raise ValueError(f"keep_turns must be None (keep all) or >= 1, got {keep_turns!r}")
        for name, candidate in (("client", client), ("async_client", async_client)):
            if candidate.get_connection_kwargs().get("decode_responses"):
                raise ValueError(f"{name} must be made with decode_responses=False: values are binary")
        if not prefix:
            raise ValueError("prefix must not be empty")
        self._trips = RoundTrips(client, async_client)
        self.prefix = prefix
        self.keep_turns = keep_turns
        # thread -> its latest checkpoint as this saver put it, while a caller holding the
        # thread resumes its own runs (see ``resuming``); None until the first put.
        self._own_latest: dict[str, CheckpointTuple | None] = {}

    @classmethod
    def from_url(
        cls,
        redis_url: str,
        *,
        cluster: bool = False,
        prefix: str = DEFAULT_PREFIX,
        keep_turns: int | None = DEFAULT_KEEP_TURNS,
        serde: SerializerProtocol | None = None,
    ) -> RedisCheckpointSaver:
        """A saver with its own sync and async clients for a ``redis://`` or ``unix://`` URL.

        Args:
            redis_url: The server's URL; with ``cluster``, any node of a Redis Cluster.
            cluster: Connect with redis-py's cluster clients.
            prefix: The start of every key.
            keep_turns: How many of a thread's latest turns to keep; ``None`` keeps all.
            serde: The serializer, LangGraph's default if None.

        Returns:
            The saver, to be closed with ``aclose()`` (or ``close()`` if only the sync API ran).
        """
        # Named like the process's other connections, so the embedded server's stop() knows them.
        return cls(
            sync_client(redis_url, cluster=cluster),
            async_client(redis_url, cluster=cluster),
            prefix=prefix,
            keep_turns=keep_turns,
            serde=serde,
        )

    def close(self) -> None:
        """Close the sync client (the async one needs ``aclose()``)."""
        self._trips.close()

    async def aclose(self) -> None:
        """Close both clients (after the writes still held are in Redis)."""
        await self._trips.aclose()

    def __enter__(self) -> RedisCheckpointSaver:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> RedisCheckpointSaver:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ public API

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Fetch a checkpoint tuple: the config's ``checkpoint_id``, or the namespace's latest.

        Args:
            config: The thread id, namespace and (optional) checkpoint id.

        Returns:
            The checkpoint tuple, its pending writes in ``writes_sort_key`` order, or None.
        """
        return self._own(config) or self._trips.run(self._get_tuple(config))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Asynchronously fetch a checkpoint tuple (see ``get_tuple``).

        Args:
            config: The thread id, namespace and (optional) checkpoint id.

        Returns:
            The checkpoint tuple, its pending writes in ``writes_sort_key`` order, or None.
        """
        return self._own(config) or await self._trips.arun(self._get_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """List checkpoints, newest first within each thread; with ``config=None`` every
        thread, one after another.

        Args:
            config: The thread, and optionally the namespace and checkpoint id, to list.
            filter: Metadata items a checkpoint must have.
            before: List only checkpoints older than this config's checkpoint.
            limit: At most this many checkpoints.

        Returns:
            Iterator of the matching checkpoint tuples.
        """
        return self._trips.stream(self._list(config, filter, before, limit))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Asynchronously list checkpoints (see ``list``).

        Args:
            config: The thread, and optionally the namespace and checkpoint id, to list.
            filter: Metadata items a checkpoint must have.
            before: List only checkpoints older than this config's checkpoint.
            limit: At most this many checkpoints.

        Returns:
            Async iterator of the matching checkpoint tuples.
        """
        async for item in self._trips.astream(self._list(config, filter, before, limit)):
            yield item

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint with its metadata and new channel values; a turn's first
        checkpoint also drops the turns older than ``keep_turns``.

        Args:
            config: The thread, namespace and parent checkpoint id.
            checkpoint: The checkpoint to store.
            metadata: Its metadata.
            new_versions: The channels whose values this checkpoint changed, with their versions.

        Returns:
            The stored checkpoint's config.
        """
        stored = self._trips.run(self._put(config, checkpoint, metadata, new_versions))
        self._keep_own(config, stored, checkpoint, metadata)
        return stored

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Asynchronously store a checkpoint (see ``put``).

        Args:
            config: The thread, namespace and parent checkpoint id.
            checkpoint: The checkpoint to store.
            metadata: Its metadata.
            new_versions: The channels whose values this checkpoint changed, with their versions.

        Returns:
            The stored checkpoint's config.
        """
        stored = await self._trips.arun(self._put(config, checkpoint, metadata, new_versions))
        self._keep_own(config, stored, checkpoint, metadata)
        return stored

    @contextmanager
    def resuming(self, thread_id: str) -> Iterator[None]:
        """Within the block, the thread's latest checkpoint, once this saver has put it, is read
        back from memory instead of Redis: for a caller that holds the thread, so that no one
        else writes it meanwhile, and resumes its own run (a turn's second run, after the
        reply's checkpoint). Any other change to the thread through this saver (writes, a
        redaction, a deletion) sends reads to Redis again.

        Args:
            thread_id: The thread the caller holds.
        """
        thread_id = _thread_id(thread_id)
        self._own_latest[thread_id] = None
        try:
            yield
        finally:
            self._own_latest.pop(thread_id, None)

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Store a task's writes with their checkpoint. A retried task's writes keep the
        first ones stored; special writes (errors, interrupts...) replace theirs.

        Args:
            config: The config of the checkpoint the writes belong to.
            writes: ``(channel, value)`` pairs.
            task_id: The task that made them.
            task_path: The task's path.
        """
        self._forget_own(_thread_id(config["configurable"].get("thread_id")))
        self._trips.run(self._put_writes(config, writes, task_id, task_path))

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Asynchronously store a task's writes (see ``put_writes``); they may wait a moment
        to go with the step's checkpoint, but are in Redis when this returns.

        Args:
            config: The config of the checkpoint the writes belong to.
            writes: ``(channel, value)`` pairs.
            task_id: The task that made them.
            task_path: The task's path.
        """
        self._forget_own(_thread_id(config["configurable"].get("thread_id")))
        await self._trips.arun(self._put_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        """Delete a thread's checkpoints, writes and channel values.

        Args:
            thread_id: The thread to delete.
        """
        self._forget_own(thread_id)
        self._trips.run(self._prune([thread_id], "delete"))

    async def adelete_thread(self, thread_id: str) -> None:
        """Asynchronously delete a thread (see ``delete_thread``).

        Args:
            thread_id: The thread to delete.
        """
        self._forget_own(thread_id)
        await self._trips.arun(self._prune([thread_id], "delete"))

    async def aredact_thread(self, thread_id: str, texts: Sequence[str], *, kept: Collection[str] = ()) -> int:
        """Cut every occurrence of the texts out of the strings a thread's channel values and
        pending writes hold (within dicts, lists and tuples; dict keys are names, left alone), each
        changed value stored again in place: what a forget removed leaves no copy in the thread.

        Args:
            thread_id: The thread.
            texts: The texts to cut out (empty ones are ignored).
            kept: Channels left whole (ids, which a cut would turn into other ids).

        Returns:
            How many stored values changed.
        """
        self._forget_own(thread_id)
        return await self._trips.arun(self._redact(thread_id, longest_first(texts), kept))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) of the given runs. Scans every thread of
        this prefix: meant for administration, not for each turn.

        Args:
            run_ids: The runs whose checkpoints to delete.
        """
        self._forget_own()
        self._trips.run(self._delete_for_runs(run_ids))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Asynchronously delete the checkpoints of runs (see ``delete_for_runs``).

        Args:
            run_ids: The runs whose checkpoints to delete.
        """
        self._forget_own()
        await self._trips.arun(self._delete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and channel value of a thread to another.

        Args:
            source_thread_id: The thread to copy from.
            target_thread_id: The thread to copy to.
        """
        self._forget_own(target_thread_id)
        self._trips.run(self._copy_thread(source_thread_id, target_thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Asynchronously copy a thread (see ``copy_thread``).

        Args:
            source_thread_id: The thread to copy from.
            target_thread_id: The thread to copy to.
        """
        self._forget_own(target_thread_id)
        await self._trips.arun(self._copy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads, each in one script.

        Args:
            thread_ids: The threads to prune.
            strategy: ``"keep_latest"`` keeps each namespace's latest checkpoint, ``"delete"`` none.
        """
        for thread_id in thread_ids:
            self._forget_own(thread_id)
        self._trips.run(self._prune(thread_ids, _prune_strategy(strategy)))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Asynchronously prune threads (see ``prune``).

        Args:
            thread_ids: The threads to prune.
            strategy: ``"keep_latest"`` keeps each namespace's latest checkpoint, ``"delete"`` none.
        """
        for thread_id in thread_ids:
            self._forget_own(thread_id)
        await self._trips.arun(self._prune(thread_ids, _prune_strategy(strategy)))

    def key_pattern(self, thread_id: str) -> str:
        """A SCAN pattern matching every key of the thread (to measure or inspect it).

        Args:
            thread_id: The thread.

        Returns:
            The glob pattern, the thread's key prefix escaped.
        """
        return _Thread(self.prefix, _thread_id(thread_id)).key_pattern

    def get_next_version(self, current: str | int | None, channel: None = None) -> str:
        """``<counter>.<random>``: ordered like integers, and two forks of one checkpoint
        never give different values the same version (a channel value is stored per version).

        Args:
            current: The channel's current version, None for a new channel.
            channel: Unused.

        Returns:
            The next version.
        """
        counter = 0 if current is None else int(str(current).split(".")[0])
        return f"{counter + 1:032}.{random.random():016}"

    # ------------------------------------------------------------------ operations

    def _get_tuple(self, config: RunnableConfig) -> Steps[CheckpointTuple | None]:
        thread, ns = self._thread(config), _config_namespace(config)
        checkpoint_id = get_checkpoint_id(config)
        member = "" if checkpoint_id is None else _member(ns, checkpoint_id)
        found = yield Call(
            GET, thread.index, (thread.index, thread.blobs), (thread.records, member, *_namespace_range(ns))
        )
        if found is None:
            yield None
            return
        member, items, values = found
        record = dict(zip(items[::2], items[1::2]))
        if b"checkpoint" not in record:
            yield None
            return
        listed = dict(zip(record.get(b"values", b"").decode().split(), values))
        stored = _Stored(*_parse_member(member), record, self._load(record[b"metadata"]))
        (tup,) = yield from self._tuples(thread, [stored], listed)
        yield tup

    def _list(
        self,
        config: RunnableConfig | None,
        wanted: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Steps[CheckpointTuple]:
        if limit is not None and limit <= 0:
            return
        if config is None:
            thread_ids = yield from self._all_thread_ids()
            ns, only_id = None, None
        else:
            thread_ids = [self._thread(config).thread_id]
            ns, only_id = config["configurable"].get("checkpoint_ns"), get_checkpoint_id(config)
        before_id = get_checkpoint_id(before) if before else None
        remaining = limit
        for thread_id in thread_ids:
            thread = _Thread(self.prefix, thread_id)
            candidates = yield from self._newest_first(thread, ns, before_id)
            if only_id is not None:
                candidates = [c for c in candidates if c[1] == only_id]
            for start in range(0, len(candidates), _PAGE_SIZE):
                page = candidates[start : start + _PAGE_SIZE]
                records = yield Batch(lambda p, page=page: [p.hgetall(thread.checkpoint(*c)) for c in page])
                found = [
                    _Stored(ns_, id_, record, self._load(record[b"metadata"]))
                    for (ns_, id_), record in zip(page, records)
                    if b"checkpoint" in record
                ]
                found = [s for s in found if _matches(s.metadata, wanted)][:remaining]
                for item in (yield from self._tuples(thread, found)):
                    yield item
                if remaining is not None:
                    remaining -= len(found)
                    if remaining == 0:
                        return

    def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Steps[RunnableConfig]:
        thread, ns = self._thread(config), _config_namespace(config)
        checkpoint_id = checkpoint["id"]
        values = checkpoint["channel_values"]
        stored_metadata = get_checkpoint_metadata(config, metadata)
        run_id = stored_metadata.get("run_id")
        source = stored_metadata.get("source") or ""
        blobs = {
            _blob_field(ns, channel, version): (
                self._dump(values[channel]) if channel in values else _EMPTY_VALUE
            )
            for channel, version in new_versions.items()
        }
        starts_turn = self.keep_turns is not None and ns == "" and source == "input"
        record = (  # in PUT's order
            self._dump({k: v for k, v in checkpoint.items() if k != "channel_values"}),
            self._dump(stored_metadata),
            config["configurable"].get("checkpoint_id") or "",
            source,
            "" if run_id is None else str(run_id),
            " ".join(_blob_field(ns, channel, version) for channel, version in checkpoint["channel_versions"].items()),
        )
        yield Call(
            PUT,
            thread.index,
            (thread.index, thread.blobs, thread.checkpoint(ns, checkpoint_id)),
            (
                _member(ns, checkpoint_id),
                thread.records,
                str(self.keep_turns) if starts_turn else "",
                *record,
                *_items(blobs),
            ),
        )
        yield thread.config(ns, checkpoint_id)

    def _put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> Steps[None]:
        thread, ns = self._thread(config), _config_namespace(config)
        checkpoint_id = config["configurable"]["checkpoint_id"]
        regular: dict[str, bytes] = {}  # a retried task does not duplicate its writes
        special: dict[str, bytes] = {}  # errors, interrupts...: the latest one wins
        for position, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, position)
            type_, data = self.serde.dumps_typed(value)
            target = special if idx < 0 else regular
            target[f"write:{task_id}:{idx}"] = _pack([channel, task_path, type_], data)
        key = thread.checkpoint(ns, checkpoint_id)
        # LangGraph puts the step's checkpoint right after its tasks' writes: they share a round trip.
        yield Call(
            PUT_WRITES, thread.index, (key,), (2 * len(regular), *_items(regular), *_items(special)), may_wait=True
        )
        yield None

    def _copy_thread(self, source_thread_id: str, target_thread_id: str) -> Steps[None]:
        source = _Thread(self.prefix, _thread_id(source_thread_id))
        target = _Thread(self.prefix, _thread_id(target_thread_id))
        members, blobs = yield Batch(lambda p: p.zrange(source.index, 0, -1).hgetall(source.blobs))
        entries = [_parse_member(m) for m in members]
        records = yield Batch(lambda p: [p.hgetall(source.checkpoint(*e)) for e in entries])
        copied = [(entry, record) for entry, record in zip(entries, records) if record]

        def queue(p: Pipeline | AsyncPipeline) -> None:
            for (ns, checkpoint_id), record in copied:
                key = target.checkpoint(ns, checkpoint_id)
                p.delete(key)
                p.hset(key, mapping=record)
            p.zadd(target.index, {_member(*entry): 0 for entry, _ in copied})
            if blobs:
                p.hset(target.blobs, mapping=blobs)

        if copied:
            yield Batch(queue, transaction=True)
        yield None

    def _redact(self, thread_id: str, texts: Sequence[str], kept: Collection[str]) -> Steps[int]:
        thread = _Thread(self.prefix, _thread_id(thread_id))
        members, blobs = yield Batch(lambda p: p.zrange(thread.index, 0, -1).hgetall(thread.blobs))
        keys = [thread.blobs, *(thread.records + member.decode() for member in members)]
        records = yield Batch(lambda p: [p.hgetall(key) for key in keys[1:]])
        # Channel values (labelled with their type) and writes (with their channel, task path and
        # type); a record's checkpoint and metadata hold ids and versions, never a channel's text.
        values = [(1, field, raw, 1, _unpack(field, 2)[0][1]) for field, raw in blobs.items() if raw != _EMPTY_VALUE]
        values += [(place, field, raw, 3, _unpack(raw, 3)[0][0]) for place, record in enumerate(records, start=2)
                   for field, raw in record.items() if field.startswith(_WRITE_FIELD)]
        changes: list[str | bytes | int] = []
        for place, field, raw, labels, channel in values:
            if channel in kept:
                continue
            head, data = _unpack(raw, labels)
            value = self.serde.loads_typed((head[-1], data))
            if (redacted := without_texts(value, texts)) != value:
                type_, dumped = self.serde.dumps_typed(redacted)
                changes += [place, field, _pack([*head[:-1], type_], dumped)]
        if changes:
            yield Call(REWRITE, thread.index, tuple(keys), tuple(changes))
        yield len(changes) // 3

    def _delete_for_runs(self, run_ids: Sequence[str]) -> Steps[None]:
        doomed_runs = sorted({str(run_id) for run_id in run_ids} - {""})  # "" is stored for "no run"
        if doomed_runs:
            thread_ids = yield from self._all_thread_ids()
            yield from self._prune(thread_ids, "delete_runs", doomed_runs)
        else:
            yield None

    def _prune(self, thread_ids: Sequence[str], strategy: str, options: Sequence[str] = ()) -> Steps[None]:
        """Each thread pruned by one script (atomic: a put cannot land in the middle)."""
        for thread_id in thread_ids:
            thread = _Thread(self.prefix, _thread_id(thread_id))
            yield Call(PRUNE, thread.index, (thread.index, thread.blobs), (thread.records, strategy, *options))
        yield None

    # ------------------------------------------------------------------ queries

    def _tuples(
        self, thread: _Thread, stored: list[_Stored], listed: Mapping[str, bytes | None] | None = None
    ) -> Query[list[CheckpointTuple]]:
        """Checkpoint tuples with their channel values; those not ``listed`` already are read
        in one round trip."""
        checkpoints: list[Checkpoint] = [self._load(s.record[b"checkpoint"]) for s in stored]
        blobs = dict(listed or {})
        missing = sorted(
            {
                _blob_field(s.ns, channel, version)
                for s, checkpoint in zip(stored, checkpoints)
                for channel, version in checkpoint["channel_versions"].items()
            }
            - blobs.keys()
        )
        if missing:
            (raw_values,) = yield Batch(lambda p: p.hmget(thread.blobs, missing))
            blobs.update(zip(missing, raw_values))
        tuples = []
        for s, checkpoint in zip(stored, checkpoints):
            values = {}
            for channel, version in checkpoint["channel_versions"].items():
                raw = blobs.get(_blob_field(s.ns, channel, version))
                if raw is not None and raw != _EMPTY_VALUE:
                    values[channel] = self._load(raw)
            parent_id = s.record.get(b"parent")
            tuples.append(
                CheckpointTuple(
                    config=thread.config(s.ns, s.checkpoint_id),
                    checkpoint={**checkpoint, "channel_values": values},
                    metadata=s.metadata,
                    parent_config=thread.config(s.ns, parent_id.decode()) if parent_id else None,
                    pending_writes=self._pending_writes(s.record),
                )
            )
        return tuples

    def _newest_first(self, thread: _Thread, ns: str | None, before_id: str | None) -> Query[list[tuple[str, str]]]:
        """(namespace, checkpoint id) of a thread, newest first; all namespaces if ``ns`` is None."""
        if ns is not None:
            (members,) = yield Batch(lambda p: p.zrevrangebylex(thread.index, *_namespace_range(ns, before_id)))
            return [_parse_member(m) for m in members]
        (members,) = yield Batch(lambda p: p.zrange(thread.index, 0, -1))
        located = sorted((_parse_member(m) for m in members), key=lambda e: e[1], reverse=True)
        return [e for e in located if before_id is None or e[1] < before_id]

    def _all_thread_ids(self) -> Query[list[str]]:
        head, tail = f"{self.prefix}:{{", "}:checkpoints"
        pattern = f"{glob_escaped(head)}*{glob_escaped(tail)}"
        found: set[str] = set()
        for key in (yield Scan(pattern, "zset", _SCAN_COUNT)):
            quoted = key.decode()[len(head) : -len(tail)]
            if not re.search(r"[{}:]", quoted):  # a quoted thread id has none of these
                found.add(unquote(quoted))
        return sorted(found)

    # ------------------------------------------------------------------ own checkpoints

    def _own(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The thread's latest checkpoint as this saver put it, if the config asks for it within
        ``resuming`` (a copy: LangGraph updates the one it resumes from in place)."""
        if not self._own_latest:
            return None
        configurable = config.get("configurable", {})
        own = self._own_latest.get(_thread_id(configurable.get("thread_id")))
        if own is None or _config_namespace(config) != "" or get_checkpoint_id(config) not in (
                None, own.checkpoint["id"]):
            return None
        return own._replace(checkpoint=_copied(own.checkpoint), metadata=dict(own.metadata))

    def _keep_own(self, config: RunnableConfig, stored: RunnableConfig, checkpoint: Checkpoint,
                  metadata: CheckpointMetadata) -> None:
        thread_id = _thread_id(config["configurable"].get("thread_id"))
        if thread_id not in self._own_latest:
            return
        if _config_namespace(config) != "":
            self._own_latest[thread_id] = None  # a subgraph's: the thread's reads go to Redis
            return
        parent_id = config["configurable"].get("checkpoint_id")
        # As get_tuple would read it: its values (those of channels with a version), no pending writes.
        values = {channel: checkpoint["channel_values"][channel]
                  for channel in checkpoint["channel_versions"] if channel in checkpoint["channel_values"]}
        self._own_latest[thread_id] = CheckpointTuple(
            config=stored,
            checkpoint=_copied({**checkpoint, "channel_values": values}),
            metadata=get_checkpoint_metadata(config, metadata),
            parent_config=_Thread(self.prefix, thread_id).config("", parent_id) if parent_id else None,
            pending_writes=[],
        )

    def _forget_own(self, thread_id: str | None = None) -> None:
        """Reads of the thread (of every thread, with None) go to Redis until its next put."""
        for held in self._own_latest if thread_id is None else [_thread_id(thread_id)]:
            if held in self._own_latest:
                self._own_latest[held] = None

    # ------------------------------------------------------------------ encoding

    def _thread(self, config: RunnableConfig) -> _Thread:
        return _Thread(self.prefix, _thread_id(config.get("configurable", {}).get("thread_id")))

    def _dump(self, value: Any) -> bytes:
        type_, data = self.serde.dumps_typed(value)
        return _pack([type_], data)

    def _load(self, raw: bytes) -> Any:
        (type_,), data = _unpack(raw, 1)
        return self.serde.loads_typed((type_, data))

    def _pending_writes(self, record: dict[bytes, bytes]) -> list[PendingWrite]:
        """The record's writes in ``writes_sort_key`` order, the order LangGraph applies them."""
        keyed = []
        for name, raw in record.items():
            if not name.startswith(_WRITE_FIELD):
                continue
            task_id, _, idx = name[len(_WRITE_FIELD) :].decode().rpartition(":")
            (channel, task_path, type_), data = _unpack(raw, 3)
            write = (task_id, channel, self.serde.loads_typed((type_, data)))
            keyed.append((writes_sort_key(task_path, task_id, int(idx)), write))
        return [write for _, write in sorted(keyed, key=lambda pair: pair[0])]

    # ------------------------------------------------------------------ drivers


def longest_first(texts: Iterable[str]) -> list[str]:
    """The texts to cut, once each, empty ones dropped, longest first: a text's start, cut first,
    would leave the rest of a whole copy behind."""
    return sorted({text for text in texts if text}, key=len, reverse=True)


def without_texts(value: Any, texts: Sequence[str]) -> Any:
    """``value`` with every occurrence of the texts (:func:`longest_first`) cut out of its strings,
    within dicts, lists and tuples (keys, which are names, left alone), until none is left (a cut
    can join two halves into one more)."""
    if isinstance(value, str):
        while any(text in value for text in texts):
            for text in texts:
                value = value.replace(text, "")
        return value
    if type(value) is dict:
        return {key: without_texts(item, texts) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(without_texts(item, texts) for item in value)
    return value


def _items(mapping: Mapping[str, str | bytes]) -> list[str | bytes]:
    """``field, value, field, value…`` as a script's arguments."""
    return [item for pair in mapping.items() for item in pair]


def _thread_id(value: object) -> str:
    if value is None or str(value) == "":
        raise ValueError("a checkpoint needs a non-empty thread_id in config['configurable']")
    return str(value)


def _copied(checkpoint: Checkpoint) -> Checkpoint:
    """A copy as LangGraph's own ``copy_checkpoint`` makes one, with the same keys as the original."""
    copied = {**checkpoint, "channel_values": dict(checkpoint["channel_values"]),
              "channel_versions": dict(checkpoint["channel_versions"]),
              "versions_seen": {node: dict(seen) for node, seen in checkpoint["versions_seen"].items()}}
    if isinstance(checkpoint.get("updated_channels"), list):
        copied["updated_channels"] = list(checkpoint["updated_channels"])
    return copied  # type: ignore[return-value]


def _config_namespace(config: RunnableConfig) -> str:
    return config["configurable"].get("checkpoint_ns") or ""


def _prune_strategy(strategy: str) -> str:
    if strategy not in _PRUNE_STRATEGIES:
        raise ValueError(f"unknown prune strategy {strategy!r}; use one of {sorted(_PRUNE_STRATEGIES)}")
    return strategy
