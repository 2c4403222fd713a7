"""Round trips to Redis: every operation is written once, as a generator of round trips
(``Batch``, ``Call``), and run either on a ``redis.Redis`` client (the sync API) or on a
``redis.asyncio.Redis`` client (the async API) by ``RoundTrips`` — or on their Redis Cluster
counterparts: every key of a thread shares its hash slot, and ``Scan`` visits every primary.

``put``, ``put_writes`` and ``get_tuple`` are one script call each, so one round trip, and
each round trip saved is saved on every step: LangGraph waits for every checkpoint of a
``durability="sync"`` run. So in the async API a task's writes wait up to ``_HOLD_SECONDS``
for the step's checkpoint, which LangGraph puts right after, and both go in one round trip;
``aput_writes`` still returns only once its writes are in Redis. A turn of GOAT's graph (9
checkpoints, 10 task writes) costs 10 round trips. Listing and copying read in pipelined
batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import redis
import redis.asyncio
from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from graph.checkpoint.scripts import SCRIPTS

# How long a task's writes wait for their step's checkpoint, which LangGraph puts within about
# a millisecond after the step's last task: both then go in one round trip.
_HOLD_SECONDS = 0.002

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Batch:
    """Commands sent in one round trip; the generator that yields it receives their replies.

    ``queue`` adds the commands to a sync or async pipeline (both queue synchronously);
    ``transaction`` wraps them in MULTI/EXEC.
    """

    queue: Callable[[Pipeline | AsyncPipeline], object]
    transaction: bool = False


@dataclass(frozen=True)
class Call:
    """One run of a Lua script (one of ``SCRIPTS``) on a thread's keys; the generator
    receives its reply. A call that ``may_wait`` can go with the thread's next call."""

    script: str
    thread: str  # the thread's index key: calls of one thread share a slot
    keys: tuple[str, ...]
    args: tuple[str | bytes | int, ...]
    may_wait: bool = False


@dataclass(frozen=True)
class Scan:
    """Every key matching ``match`` (a SCAN pattern) of ``type``, from every server (each
    primary of a Redis Cluster), in as many round trips as SCAN takes; the generator receives
    the keys."""

    match: str
    type: str
    count: int


# An operation yields round trips, and its outputs (one, or a stream for list); a query
# yields only round trips and returns its value.
Steps: TypeAlias = Generator[Batch | Call | Scan | T, Any, None]
Query: TypeAlias = Generator[Batch | Call | Scan, Any, R]


@dataclass
class _Waiting:
    """A thread's held calls, with their callers' futures, and the timer that sends them."""

    calls: list[tuple[Call, asyncio.Future[Any]]]
    timer: asyncio.TimerHandle


class _AsyncCalls:
    """The async API's script calls. A call that ``may_wait`` is held up to ``_HOLD_SECONDS``
    for its thread's next call, and goes with it in one round trip (a pipeline, in call order).
    Every caller still returns only once its own reply is back: a write is in Redis by then."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client
        self._scripts = {source: client.register_script(source) for source in SCRIPTS}
        self._waiting: dict[str, _Waiting] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def run(self, call: Call) -> Any:
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

    async def _hold(self, call: Call) -> Any:
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

    def _send(self, calls: list[tuple[Call, asyncio.Future[Any]]]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._deliver(calls))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return task

    async def _deliver(self, calls: list[tuple[Call, asyncio.Future[Any]]]) -> None:
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

    async def _pipelined(self, calls: list[Call]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for call in calls:
                # As a raw command: redis-py's cluster pipeline refuses its evalsha() (a script's
                # keys could span nodes), but the calls held together are one thread's, one slot.
                pipe.execute_command("EVALSHA", self._scripts[call.script].sha, len(call.keys), *call.keys, *call.args)
            replies = await pipe.execute(raise_on_error=False)
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if lost:  # the server lost the scripts: none of these ran
            for source in {calls[i].script for i in lost}:
                await self._client.script_load(source)
            for i, reply in zip(lost, await self._pipelined([calls[i] for i in lost])):
                replies[i] = reply
        return replies



class RoundTrips:
    """Runs operations' round trips: on the sync client, or on the async one (where script
    calls go through ``_AsyncCalls``). Scripts run by EVALSHA, loaded again when the server
    has lost them (a restart, SCRIPT FLUSH)."""

    def __init__(self, client: redis.Redis | redis.RedisCluster,
                 async_client: redis.asyncio.Redis | redis.asyncio.RedisCluster) -> None:
        self._redis = client
        self._aredis = async_client
        self._scripts: dict[str, Script] = {source: client.register_script(source) for source in SCRIPTS}
        self._calls = _AsyncCalls(async_client)
        self._discovered = not isinstance(async_client, redis.asyncio.RedisCluster)
        self._discovering = asyncio.Lock()

    def close(self) -> None:
        """Close the sync client."""
        self._redis.close()

    async def aclose(self) -> None:
        """Close both clients (after the writes still held are in Redis)."""
        await self._calls.drain()
        await self._aredis.aclose()
        self._redis.close()

    def run(self, steps: Steps[T]) -> T:
        """The output of an operation that has one, its round trips made on the sync client."""
        (result,) = self.stream(steps)
        return result

    async def arun(self, steps: Steps[T]) -> T:
        """The output of an operation that has one, its round trips made on the async client."""
        (result,) = [item async for item in self.astream(steps)]
        return result

    def stream(self, steps: Steps[T]) -> Iterator[T]:
        """An operation's outputs as it yields them, its round trips made on the sync client."""
        reply: Any = None
        while True:
            try:
                item = steps.send(reply)
            except StopIteration:
                return
            if isinstance(item, (Batch, Call, Scan)):
                reply = self._execute(item)
            else:
                reply = None
                yield item

    async def astream(self, steps: Steps[T]) -> AsyncIterator[T]:
        """An operation's outputs as it yields them, its round trips made on the async client."""
        if not self._discovered:
            await self._discover()
        reply: Any = None
        while True:
            try:
                item = steps.send(reply)
            except StopIteration:
                return
            if isinstance(item, (Batch, Call, Scan)):
                reply = await self._aexecute(item)
            else:
                reply = None
                yield item

    async def _discover(self) -> None:
        """Learn a Redis Cluster's slots once, before the first round trip. redis-py's async
        cluster client, used by many callers at once before it knows them, sends each to any
        node; the MOVED replies make it close every connection, in use or not, every fifth one
        (a turn's first checkpoints failed so when 50 chats started together)."""
        async with self._discovering:
            if not self._discovered:
                await self._aredis.initialize()
                self._discovered = True

    def _execute(self, step: Batch | Call | Scan) -> Any:
        if isinstance(step, Call):
            return self._scripts[step.script](keys=step.keys, args=step.args)
        if isinstance(step, Scan):
            return list(self._redis.scan_iter(match=step.match, count=step.count, _type=step.type))
        with self._redis.pipeline(transaction=step.transaction) as pipe:
            step.queue(pipe)
            return pipe.execute()

    async def _aexecute(self, step: Batch | Call | Scan) -> Any:
        if isinstance(step, Call):
            return await self._calls.run(step)
        if isinstance(step, Scan):
            return [key async for key in self._aredis.scan_iter(match=step.match, count=step.count, _type=step.type)]
        async with self._aredis.pipeline(transaction=step.transaction) as pipe:
            step.queue(pipe)
            return await pipe.execute()
