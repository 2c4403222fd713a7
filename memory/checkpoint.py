"""A LangGraph checkpointer on plain Redis (≥ 6.2): hashes, sorted sets and Lua, no modules.

One thread's keys, all carrying the thread id as a Redis Cluster hash tag so that they
share a slot and one script can span them (``<ns>`` is the percent-quoted checkpoint
namespace, ``""`` for the root graph):

    <prefix>:{<thread>}:checkpoints            ZSET, score 0, members ``<ns>:<checkpoint id>``:
                                              lexicographic order is time order within a namespace
    <prefix>:{<thread>}:checkpoint:<ns>:<id>   HASH: the checkpoint without its channel values,
                                              its metadata, parent id, source and run id, the
                                              ``values`` it refers to (their blob fields, space
                                              separated), and one ``write:<task id>:<idx>``
                                              field per pending write
    <prefix>:{<thread>}:blobs                  HASH ``<ns>:<channel>:<version>`` → channel value

As in the Postgres saver, a channel value is stored once per version, so a checkpoint
that leaves a channel unchanged costs nothing for it. The thread id, namespaces, channel
names and versions are percent-quoted (no ``{``, ``}``, ``:`` or space left), so every
key, member and field splits back unambiguously, whatever the ids contain. Values are
``self.serde`` output, stored as bytes.

Retention: a turn is one run of the graph, started by a root checkpoint whose metadata
``source`` is ``"input"``. When a turn starts, the checkpoints older than the start of
the ``keep_turns``-th most recent turn are dropped with their pending writes, and so are
the channel values no remaining checkpoint refers to. ``keep_turns=None`` keeps all.

Cost: ``put``, ``put_writes`` and ``get_tuple`` are one Lua script each, so one round trip
(a turn start's pruning runs inside its ``put``): LangGraph waits for every checkpoint of a
``durability="sync"`` run, so each round trip saved is saved on every step. In the async
API a task's writes wait up to ``_HOLD_SECONDS`` for the step's checkpoint, which LangGraph
puts right after, and both go in one round trip; ``aput_writes`` still returns only once
its writes are in Redis. A turn of GOAT's graph (9 checkpoints, 10 task writes) costs 10
round trips. A script finds a checkpoint's hash from the thread's other keys; all of them
share the thread's slot. Listing and copying read in pipelined batches.

Every operation is written once, as a generator of round trips (``_Batch``, ``_Call``): the
sync API runs it on a ``redis.Redis`` client, the async API on a ``redis.asyncio.Redis``.
"""

from __future__ import annotations

import asyncio
import functools
import random
import re
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeAlias, TypeVar
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
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from memory.redis_server import process_client_name, waiting_pool

DEFAULT_PREFIX = "goat:ckpt"
DEFAULT_KEEP_TURNS = 2

_PAGE_SIZE = 50  # checkpoints read per round trip while listing
_SCAN_COUNT = 500
_WRITE_FIELD = b"write:"
# How long a task's writes wait for their step's checkpoint, which LangGraph puts within about
# a millisecond after the step's last task: both then go in one round trip.
_HOLD_SECONDS = 0.002

T = TypeVar("T")
R = TypeVar("R")

# ---------------------------------------------------------------------- Lua

# A checkpoint's ``values`` field lists the blob fields of its channel values, space separated
# (quoted names and versions hold no space). Walked with string.find: gmatch costs 2-3x more.
_FIELDS = """
local function each_field(list, visit)
  local from = 1
  while from <= #list do
    local space = string.find(list, ' ', from, true) or #list + 1
    visit(string.sub(list, from, space - 1))
    from = space + 1
  end
end
"""

# Retention, for the scripts that prune. A member is ``<quoted ns>:<checkpoint id>`` and its
# checkpoint's key is ``records .. member``; root members start with ':'. A strategy returns
# the thread's kept and doomed members (both empty when nothing is doomed).
_PRUNING = _FIELDS + """
local function namespace_of(member)
  return string.sub(member, 1, string.find(member, ':', 1, true) - 1)
end

local function id_of(member)
  return string.sub(member, string.find(member, ':', 1, true) + 1)
end

-- Byte order, as Python and ZRANGEBYLEX compare (Lua's < follows the server's locale).
local function precedes(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function split(members, keeps)
  local kept, doomed = {}, {}
  for i, member in ipairs(members) do
    if keeps(i, member) then kept[#kept + 1] = member else doomed[#doomed + 1] = member end
  end
  return kept, doomed
end

local strategies = {}

function strategies.delete(index)
  return {}, redis.call('ZRANGE', index, 0, -1)
end

function strategies.keep_latest(index)
  local members = redis.call('ZRANGE', index, 0, -1)
  return split(members, function(i, member)
    return i == #members or namespace_of(members[i + 1]) ~= namespace_of(member)
  end)
end

function strategies.delete_runs(index, records, run_ids)
  local doomed_runs = {}
  for _, run_id in ipairs(run_ids) do doomed_runs[run_id] = true end
  return split(redis.call('ZRANGE', index, 0, -1), function(_, member)
    return not doomed_runs[redis.call('HGET', records .. member, 'run_id')]
  end)
end

-- Everything older than the start of the keep_turns-th newest turn, once an older turn exists.
-- Root members are split by ZRANGEBYLEX; other namespaces' (subgraphs) by their ids' bytes.
function strategies.keep_turns(index, records, options)
  local wanted, starts, oldest_kept = tonumber(options[1]), 0, nil
  local roots = redis.call('ZRANGEBYLEX', index, '[:', '(;')
  for i = #roots, 1, -1 do
    if redis.call('HGET', records .. roots[i], 'source') == 'input' then
      starts = starts + 1
      if starts == wanted then oldest_kept = roots[i] elseif starts > wanted then break end
    end
  end
  if starts <= wanted then return {}, {} end
  local kept = redis.call('ZRANGEBYLEX', index, '[' .. oldest_kept, '(;')
  local doomed = redis.call('ZRANGEBYLEX', index, '[:', '(' .. oldest_kept)
  local oldest_id = id_of(oldest_kept)
  for _, range in ipairs({{'-', '(:'}, {'(;', '+'}}) do
    for _, member in ipairs(redis.call('ZRANGEBYLEX', index, range[1], range[2])) do
      local list = precedes(id_of(member), oldest_id) and doomed or kept
      list[#list + 1] = member
    end
  end
  return kept, doomed
end

-- Drops the doomed checkpoints with their pending writes, then the values no kept one lists.
local function prune(index, blobs, records, strategy, options)
  local kept, doomed = strategies[strategy](index, records, options)
  if #doomed == 0 then return 0 end
  for _, member in ipairs(doomed) do
    redis.call('DEL', records .. member)
    redis.call('ZREM', index, member)
  end
  local listed = {}
  local function list(field) listed[field] = true end
  for _, member in ipairs(kept) do
    local fields = redis.call('HGET', records .. member, 'values')
    -- Saved before checkpoints listed their values: every value stays while it is kept.
    if not fields then return #doomed end
    each_field(fields, list)
  end
  for _, field in ipairs(redis.call('HKEYS', blobs)) do
    if not listed[field] then redis.call('HDEL', blobs, field) end
  end
  return #doomed
end
"""

# KEYS: index, blobs. ARGV: records, strategy, its options.
_PRUNE = _PRUNING + """
return prune(KEYS[1], KEYS[2], ARGV[1], ARGV[2], {unpack(ARGV, 3)})
"""

# KEYS: index, blobs, checkpoint. ARGV: member, records, keep_turns ('' = no pruning), the
# record's fields (checkpoint, metadata, parent, source, run_id, values), then the new values'
# field/value items.
_PUT = _PRUNING + """
redis.call('HSET', KEYS[3], 'checkpoint', ARGV[4], 'metadata', ARGV[5], 'parent', ARGV[6],
           'source', ARGV[7], 'run_id', ARGV[8], 'values', ARGV[9])
redis.call('ZADD', KEYS[1], 0, ARGV[1])
for i = 10, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
if ARGV[3] ~= '' then prune(KEYS[1], KEYS[2], ARGV[2], 'keep_turns', {ARGV[3]}) end
return 1
"""

# KEYS: checkpoint. ARGV: how many of the items after it are set only if absent, then the
# writes' field/value items.
_PUT_WRITES = """
local last_if_absent = 1 + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call(i <= last_if_absent and 'HSETNX' or 'HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
"""

# KEYS: index, blobs. ARGV: records, member ('' = the newest within the lex range ARGV[3],
# ARGV[4]). Returns the member, its record, and the values its record lists, in that order.
_GET = _FIELDS + """
local member = ARGV[2]
if member == '' then
  member = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[3], ARGV[4], 'LIMIT', 0, 1)[1]
  if not member then return false end
end
local key = ARGV[1] .. member
local values = {}
each_field(redis.call('HGET', key, 'values') or '', function(field)
  values[#values + 1] = redis.call('HGET', KEYS[2], field)
end)
return {member, redis.call('HGETALL', key), values}
"""

_SCRIPTS = (_PRUNE, _PUT, _PUT_WRITES, _GET)
_PRUNE_STRATEGIES = ("keep_latest", "delete")  # those ``prune`` accepts

# ---------------------------------------------------------------------- round trips


@dataclass(frozen=True)
class _Batch:
    """Commands sent in one round trip; the generator that yields it receives their replies.

    ``queue`` adds the commands to a sync or async pipeline (both queue synchronously);
    ``transaction`` wraps them in MULTI/EXEC.
    """

    queue: Callable[[Pipeline | AsyncPipeline], object]
    transaction: bool = False


@dataclass(frozen=True)
class _Call:
    """One run of a Lua script (one of ``_SCRIPTS``) on a thread's keys; the generator
    receives its reply. A call that ``may_wait`` can go with the thread's next call."""

    script: str
    thread: str  # the thread's index key: calls of one thread share a slot
    keys: tuple[str, ...]
    args: tuple[str | bytes | int, ...]
    may_wait: bool = False


# An operation yields round trips, and its outputs (one, or a stream for list); a query
# yields only round trips and returns its value.
_Steps: TypeAlias = Generator[_Batch | _Call | T, Any, None]
_Query: TypeAlias = Generator[_Batch | _Call, Any, R]


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


def _glob_escaped(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


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
        return f"{_glob_escaped(self._base)}:*"

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


@dataclass
class _Waiting:
    """A thread's held calls, with their callers' futures, and the timer that sends them."""

    calls: list[tuple[_Call, asyncio.Future[Any]]]
    timer: asyncio.TimerHandle


class _AsyncCalls:
    """The async API's script calls. A call that ``may_wait`` is held up to ``_HOLD_SECONDS``
    for its thread's next call, and goes with it in one round trip (a pipeline, in call order).
    Every caller still returns only once its own reply is back: a write is in Redis by then."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client
        self._scripts = {source: client.register_script(source) for source in _SCRIPTS}
        self._waiting: dict[str, _Waiting] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def run(self, call: _Call) -> Any:
        if call.may_wait:
            return await self._hold(call)
        waiting = self._waiting.pop(call.thread, None)
        if waiting is None:
            return await self._scripts[call.script](keys=call.keys, args=call.args)
        waiting.timer.cancel()
        own: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            # Shielded: the held callers get their replies even if this caller is cancelled.
            await asyncio.shield(self._send([*waiting.calls, (call, own)]))
        except asyncio.CancelledError:
            own.cancel()  # its reply has no reader now
            raise
        return own.result()

    async def drain(self) -> None:
        """Send the held calls now and wait for every round trip under way."""
        for thread in list(self._waiting):
            self._release(thread)
        await asyncio.gather(*self._sending, return_exceptions=True)

    async def _hold(self, call: _Call) -> Any:
        loop = asyncio.get_running_loop()
        waiting = self._waiting.get(call.thread)
        if waiting is None:
            timer = loop.call_later(_HOLD_SECONDS, self._release, call.thread)
            waiting = self._waiting[call.thread] = _Waiting([], timer)
        future: asyncio.Future[Any] = loop.create_future()
        waiting.calls.append((call, future))
        return await future

    def _release(self, thread: str) -> None:
        """Nothing came along in time: the held calls go on their own."""
        if (waiting := self._waiting.pop(thread, None)) is not None:
            waiting.timer.cancel()
            self._send(waiting.calls)

    def _send(self, calls: list[tuple[_Call, asyncio.Future[Any]]]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._deliver(calls))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return task

    async def _deliver(self, calls: list[tuple[_Call, asyncio.Future[Any]]]) -> None:
        try:
            replies = await self._pipelined([call for call, _ in calls])
        except asyncio.CancelledError:
            for _, future in calls:
                future.cancel()
            raise
        except Exception as error:  # the round trip failed: every caller gets the error
            replies = [error] * len(calls)
        for (_, future), reply in zip(calls, replies):
            if future.done():  # its caller was cancelled
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _pipelined(self, calls: list[_Call]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.evalsha(self._scripts[call.script].sha, len(call.keys), *call.keys, *call.args)
            replies = await pipe.execute(raise_on_error=False)
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if lost:  # the server lost the scripts: none of these ran
            for source in {calls[i].script for i in lost}:
                await self._client.script_load(source)
            for i, reply in zip(lost, await self._pipelined([calls[i] for i in lost])):
                replies[i] = reply
        return replies


class RedisCheckpointSaver(BaseCheckpointSaver[str]):
    """Checkpoints, pending writes and channel values of LangGraph threads in plain Redis.

    Build it with ``from_url`` (or pass both clients, made with ``decode_responses=False``);
    close it with ``close()`` / ``aclose()`` or use it as a (async) context manager.
    """

    def __init__(
        self,
        client: redis.Redis,
        async_client: redis.asyncio.Redis,
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
        self._redis = client
        self._aredis = async_client
        # Run by EVALSHA, loaded again when the server has lost them (a restart, SCRIPT FLUSH).
        self._scripts: dict[str, Script] = {source: client.register_script(source) for source in _SCRIPTS}
        self._calls = _AsyncCalls(async_client)
        self.prefix = prefix
        self.keep_turns = keep_turns

    @classmethod
    def from_url(
        cls,
        redis_url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        keep_turns: int | None = DEFAULT_KEEP_TURNS,
        serde: SerializerProtocol | None = None,
    ) -> RedisCheckpointSaver:
        """A saver with its own sync and async clients for a ``redis://`` or ``unix://`` URL."""
        # Named like the process's other connections, so the embedded server's stop() knows them.
        options: dict[str, Any] = {
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
            "client_name": process_client_name(),
        }
        return cls(
            redis.Redis.from_url(redis_url, **options),
            redis.asyncio.Redis.from_pool(waiting_pool(redis_url)),
            prefix=prefix,
            keep_turns=keep_turns,
            serde=serde,
        )

    def close(self) -> None:
        """Close the sync client (the async one needs ``aclose()``)."""
        self._redis.close()

    async def aclose(self) -> None:
        """Close both clients (after the writes still held are in Redis)."""
        await self._calls.drain()
        await self._aredis.aclose()
        self._redis.close()

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
        return self._call(self._get_tuple(config))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._acall(self._get_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Newest first within each thread; with ``config=None`` every thread, one after another."""
        return self._stream(self._list(config, filter, before, limit))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        async for item in self._astream(self._list(config, filter, before, limit)):
            yield item

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._call(self._put(config, checkpoint, metadata, new_versions))

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._acall(self._put(config, checkpoint, metadata, new_versions))

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self._call(self._put_writes(config, writes, task_id, task_path))

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await self._acall(self._put_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._call(self._prune([thread_id], "delete"))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._acall(self._prune([thread_id], "delete"))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Scans every thread of this prefix: meant for administration, not for each turn."""
        self._call(self._delete_for_runs(run_ids))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._acall(self._delete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._call(self._copy_thread(source_thread_id, target_thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._acall(self._copy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._call(self._prune(thread_ids, _prune_strategy(strategy)))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._acall(self._prune(thread_ids, _prune_strategy(strategy)))

    def key_pattern(self, thread_id: str) -> str:
        """A SCAN pattern matching every key of the thread (to measure or inspect it)."""
        return _Thread(self.prefix, _thread_id(thread_id)).key_pattern

    def get_next_version(self, current: str | int | None, channel: None = None) -> str:
        """``<counter>.<random>``: ordered like integers, and two forks of one checkpoint
        never give different values the same version (a channel value is stored per version)."""
        counter = 0 if current is None else int(str(current).split(".")[0])
        return f"{counter + 1:032}.{random.random():016}"

    # ------------------------------------------------------------------ operations

    def _get_tuple(self, config: RunnableConfig) -> _Steps[CheckpointTuple | None]:
        thread, ns = self._thread(config), _config_namespace(config)
        checkpoint_id = get_checkpoint_id(config)
        member = "" if checkpoint_id is None else _member(ns, checkpoint_id)
        found = yield _Call(
            _GET, thread.index, (thread.index, thread.blobs), (thread.records, member, *_namespace_range(ns))
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
    ) -> _Steps[CheckpointTuple]:
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
                records = yield _Batch(lambda p, page=page: [p.hgetall(thread.checkpoint(*c)) for c in page])
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
    ) -> _Steps[RunnableConfig]:
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
        record = (  # in _PUT's order
            self._dump({k: v for k, v in checkpoint.items() if k != "channel_values"}),
            self._dump(stored_metadata),
            config["configurable"].get("checkpoint_id") or "",
            source,
            "" if run_id is None else str(run_id),
            " ".join(_blob_field(ns, channel, version) for channel, version in checkpoint["channel_versions"].items()),
        )
        yield _Call(
            _PUT,
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
    ) -> _Steps[None]:
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
        yield _Call(
            _PUT_WRITES, thread.index, (key,), (2 * len(regular), *_items(regular), *_items(special)), may_wait=True
        )
        yield None

    def _copy_thread(self, source_thread_id: str, target_thread_id: str) -> _Steps[None]:
        source = _Thread(self.prefix, _thread_id(source_thread_id))
        target = _Thread(self.prefix, _thread_id(target_thread_id))
        members, blobs = yield _Batch(lambda p: p.zrange(source.index, 0, -1).hgetall(source.blobs))
        entries = [_parse_member(m) for m in members]
        records = yield _Batch(lambda p: [p.hgetall(source.checkpoint(*e)) for e in entries])
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
            yield _Batch(queue, transaction=True)
        yield None

    def _delete_for_runs(self, run_ids: Sequence[str]) -> _Steps[None]:
        doomed_runs = sorted({str(run_id) for run_id in run_ids} - {""})  # "" is stored for "no run"
        if doomed_runs:
            thread_ids = yield from self._all_thread_ids()
            yield from self._prune(thread_ids, "delete_runs", doomed_runs)
        else:
            yield None

    def _prune(self, thread_ids: Sequence[str], strategy: str, options: Sequence[str] = ()) -> _Steps[None]:
        """Each thread pruned by one script (atomic: a put cannot land in the middle)."""
        for thread_id in thread_ids:
            thread = _Thread(self.prefix, _thread_id(thread_id))
            yield _Call(_PRUNE, thread.index, (thread.index, thread.blobs), (thread.records, strategy, *options))
        yield None

    # ------------------------------------------------------------------ queries

    def _tuples(
        self, thread: _Thread, stored: list[_Stored], listed: Mapping[str, bytes | None] | None = None
    ) -> _Query[list[CheckpointTuple]]:
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
            (raw_values,) = yield _Batch(lambda p: p.hmget(thread.blobs, missing))
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
    def _newest_first(self, thread: _Thread, ns: str | None, before_id: str | None) -> _Query[list[tuple[str, str]]]:
        """(namespace, checkpoint id) of a thread, newest first; all namespaces if ``ns`` is None."""
        if ns is not None:
            (members,) = yield _Batch(lambda p: p.zrevrangebylex(thread.index, *_namespace_range(ns, before_id)))
            return [_parse_member(m) for m in members]
        (members,) = yield _Batch(lambda p: p.zrange(thread.index, 0, -1))
        located = sorted((_parse_member(m) for m in members), key=lambda e: e[1], reverse=True)
        return [e for e in located if before_id is None or e[1] < before_id]

    def _all_thread_ids(self) -> _Query[list[str]]:
        head, tail = f"{self.prefix}:{{", "}:checkpoints"
        pattern = f"{_glob_escaped(head)}*{_glob_escaped(tail)}"
        found: set[str] = set()
        cursor = 0
        while True:
            ((cursor, keys),) = yield _Batch(
                lambda p, at=cursor: p.scan(at, match=pattern, count=_SCAN_COUNT, _type="zset")
            )
            for key in keys:
                quoted = key.decode()[len(head) : -len(tail)]
                if not re.search(r"[{}:]", quoted):  # a quoted thread id has none of these
                    found.add(unquote(quoted))
            if cursor == 0:
                return sorted(found)

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

    def _call(self, steps: _Steps[T]) -> T:
        (result,) = self._stream(steps)
        return result

    async def _acall(self, steps: _Steps[T]) -> T:
        (result,) = [item async for item in self._astream(steps)]
        return result

    def _stream(self, steps: _Steps[T]) -> Iterator[T]:
        reply: Any = None
        while True:
            try:
                item = steps.send(reply)
            except StopIteration:
                return
            if isinstance(item, (_Batch, _Call)):
                reply = self._execute(item)
            else:
                reply = None
                yield item

    async def _astream(self, steps: _Steps[T]) -> AsyncIterator[T]:
        reply: Any = None
        while True:
            try:
                item = steps.send(reply)
            except StopIteration:
                return
            if isinstance(item, (_Batch, _Call)):
                reply = await self._aexecute(item)
            else:
                reply = None
                yield item

    def _execute(self, step: _Batch | _Call) -> Any:
        if isinstance(step, _Call):
            return self._scripts[step.script](keys=step.keys, args=step.args)
        with self._redis.pipeline(transaction=step.transaction) as pipe:
            step.queue(pipe)
            return pipe.execute()

    async def _aexecute(self, step: _Batch | _Call) -> Any:
        if isinstance(step, _Call):
            return await self._calls.run(step)
        async with self._aredis.pipeline(transaction=step.transaction) as pipe:
            step.queue(pipe)
            return await pipe.execute()


def _items(mapping: Mapping[str, str | bytes]) -> list[str | bytes]:
    """``field, value, field, value…`` as a script's arguments."""
    return [item for pair in mapping.items() for item in pair]


def _thread_id(value: object) -> str:
    if value is None or str(value) == "":
        raise ValueError("a checkpoint needs a non-empty thread_id in config['configurable']")
    return str(value)


def _config_namespace(config: RunnableConfig) -> str:
    return config["configurable"].get("checkpoint_ns") or ""


def _prune_strategy(strategy: str) -> str:
    if strategy not in _PRUNE_STRATEGIES:
        raise ValueError(f"unknown prune strategy {strategy!r}; use one of {sorted(_PRUNE_STRATEGIES)}")
    return strategy
