"""The Redis-backed stores against real servers: the embedded one (Redis 6.2), Debian's
redis-server (7.x) and a Redis Cluster of three of Debian's, so the Lua scripts are shown to
run on each."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import unquote

import pytest
import redis
from redis.crc import key_slot
from redis.asyncio import Redis, RedisCluster

from conftest import wait_for
from memory.stores.cache import SearchCache
from memory.stores.facts import FactsStore, RedisFactsStore
from memory.redis_clients import process_client_name, waiting_pool
from memory.stores.redis_server import EmbeddedRedis, answers_ping
from memory.prompt.tokens import count_tokens
from memory.stores.working import WorkingMemory
from memory.turns import Message

StartEmbedded = Callable[[Path], EmbeddedRedis]

# ---------------------------------------------------------------- embedded server


def socket_path(url: str) -> Path:
    return Path(unquote(url.removeprefix("unix://")))


def test_embedded_server_listens_on_a_socket_in_the_data_dir(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        assert server.url.startswith("unix://")
        assert socket_path(server.url).parent == tmp_path / "redis"
        with redis.Redis.from_url(server.url, decode_responses=True) as client:
            assert client.info("persistence")["aof_enabled"] == 1
            assert client.config_get("dir")["dir"] == str(tmp_path / "redis")
    assert not answers_ping(server.url)
    assert (tmp_path / "redis" / "redis-server.log").exists()


def test_long_data_dir_puts_the_socket_in_the_temp_dir(
    start_embedded: StartEmbedded, tmp_path: Path
) -> None:
    data_dir = tmp_path / ("a-rather-long-folder-name-" * 5)

    server = start_embedded(data_dir)

    assert socket_path(server.url).parent == Path(tempfile.gettempdir())
    assert answers_ping(server.url)
    assert (data_dir / "redis" / "appendonly.aof").exists()


def test_second_instance_on_the_same_dir_joins_the_running_server(
    start_embedded: StartEmbedded, tmp_path: Path
) -> None:
    first = start_embedded(tmp_path)
    second = start_embedded(tmp_path)

    assert second.url == first.url
    assert second.pid == first.pid
    with redis.Redis.from_url(first.url) as client:
        client.set("k", "shared")
    with redis.Redis.from_url(second.url) as client:
        assert client.get("k") == b"shared"


def test_stop_leaves_the_server_running_while_another_process_holds_it(
    start_embedded: StartEmbedded, tmp_path: Path
) -> None:
    owner = start_embedded(tmp_path)
    url = owner.url
    joiner_code = (
        "import sys; from pathlib import Path; from memory.stores.redis_server import EmbeddedRedis\n"
        "server = EmbeddedRedis(Path(sys.argv[1])); server.start(); print('joined', flush=True)\n"
        "sys.stdin.read(); server.stop()  # it did not start the server: never shuts it down\n"
    )
    with subprocess.Popen([sys.executable, "-c", joiner_code, str(tmp_path)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as joiner:
        assert joiner.stdout.readline() == "joined\n"
        owner.stop()
        assert answers_ping(url)
        joiner.stdin.close()
        assert joiner.wait(timeout=30) == 0
    assert answers_ping(url)


def test_stop_ignores_this_processs_own_unclosed_connections(
    start_embedded: StartEmbedded, tmp_path: Path
) -> None:
    """At interpreter exit the app's async client may still be open: it must not keep the server up."""
    server = start_embedded(tmp_path)
    url = server.url
    with redis.Redis.from_url(url, client_name=process_client_name()) as own:
        own.ping()
        server.stop()
    assert not answers_ping(url)


def test_stop_leaves_the_server_running_while_a_client_is_connected(
    start_embedded: StartEmbedded, tmp_path: Path
) -> None:
    server = start_embedded(tmp_path)
    url = server.url

    with redis.Redis.from_url(url, single_connection_client=True) as client:
        client.ping()
        server.stop()
        assert client.ping()


def test_data_survives_stop_and_start(start_embedded: StartEmbedded, tmp_path: Path) -> None:
    first = start_embedded(tmp_path)
    old_pid = first.pid
    with redis.Redis.from_url(first.url) as client:
        client.rpush("list", "a", "b")
    first.stop()
    assert not answers_ping(first.url)  # really shut down: nobody else was connected

    second = start_embedded(tmp_path)

    assert second.pid != old_pid
    with redis.Redis.from_url(second.url) as client:
        assert client.lrange("list", 0, -1) == [b"a", b"b"]


def test_stale_socket_of_a_crashed_server_is_replaced(
    start_embedded: StartEmbedded, tmp_path: Path
) -> None:
    crashed = start_embedded(tmp_path)
    pid = crashed.pid
    assert pid is not None
    # Held, the start lock keeps the keeper of `crashed` from starting the server again meanwhile.
    with open(tmp_path / "redis" / "server.lock", "w") as start_lock:
        fcntl.flock(start_lock, fcntl.LOCK_EX)
        os.kill(pid, signal.SIGKILL)
        # Reaped by the thread that started it (it waits on its server): gone once its /proc entry is.
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the killed server to be reaped")
        assert socket_path(crashed.url).exists()  # a killed server leaves its socket behind

    fresh = start_embedded(tmp_path)

    assert fresh.pid not in (None, pid)
    assert answers_ping(fresh.url)


def test_a_server_that_cannot_start_names_its_log(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "appendonly.aof").write_text("not an append-only file\n")

    with pytest.raises(RuntimeError, match="redis-server.log"):
        EmbeddedRedis(tmp_path).start()


# ------------------------------------------- stores on both Redis 6.2 and 7.x


@pytest.fixture(params=["embedded", "system", pytest.param("cluster", marks=pytest.mark.slow)])
async def any_redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis | RedisCluster]:
    """The embedded server (6.2), Debian's (7.x) and a 3-master Redis Cluster of Debian's,
    emptied for this test."""
    if request.param == "cluster":
        client = RedisCluster.from_url(request.getfixturevalue("cluster_url"), decode_responses=True)
        await client.initialize()  # its slots learnt before concurrent use (see graph/checkpoint/batching.py)
    else:
        url = request.getfixturevalue("redis_url" if request.param == "embedded" else "system_redis_url")
        client = Redis.from_url(url, decode_responses=True)
        await client.flushall()
    yield client
    await client.aclose()


def message(index: int) -> Message:
    role = "user" if index % 2 == 0 else "assistant"
    return {"role": role, "content": f"message {index} ✓", "timestamp": 1_700_000_000.0 + index}


async def save_turns(memory: WorkingMemory, chat_id: str, turns: int) -> list[Message]:
    """Saves ``turns`` user/assistant turns; returns all their messages in order."""
    messages = [message(index) for index in range(2 * turns)]
    for turn in range(1, turns + 1):
        assert await memory.append_turn(chat_id, turn, messages[2 * turn - 2 : 2 * turn])
    return messages


async def test_a_new_chat_is_empty(any_redis: Redis) -> None:
    memory = WorkingMemory(any_redis)

    assert (await memory.load("new", max_messages=10))[:2] == (0, [])
    assert await memory.completed_turns("new") == 0
    assert len((await memory.load("new", 1000))[1]) == 0


async def test_load_pins_the_first_message_and_keeps_the_latest_in_order(
    any_redis: Redis,
) -> None:
    memory = WorkingMemory(any_redis)
    messages = await save_turns(memory, "c1", turns=5)

    assert (await memory.load("c1", max_messages=4))[:2] == (5, [messages[0], *messages[-4:]])
    assert (await memory.load("c1", max_messages=0))[:2] == (5, [messages[0]])


@pytest.mark.parametrize("max_messages", [1, 2, 3, 5])  # a list longer than 100x: read from its tail
async def test_a_long_chats_latest_messages_read_as_a_short_ones(any_redis: Redis, max_messages: int) -> None:
    memory = WorkingMemory(any_redis)
    messages = await save_turns(memory, "c1", turns=101)

    assert (await memory.load("c1", max_messages=max_messages))[:2] == (101, [messages[0], *messages[-max_messages:]])


@pytest.mark.parametrize("max_messages", [9, 10, 25])
async def test_load_does_not_repeat_the_first_message_when_the_window_reaches_it(
    any_redis: Redis, max_messages: int
) -> None:
    memory = WorkingMemory(any_redis)
    messages = await save_turns(memory, "c1", turns=5)

    assert (await memory.load("c1", max_messages=max_messages))[1] == messages


async def test_load_stops_at_the_tokens_no_budget_could_exceed(any_redis: Redis) -> None:
    memory = WorkingMemory(any_redis)
    sized = [{**message(index), "tokens": 10} for index in range(8)]
    for turn in range(1, 5):
        assert await memory.append_turn("c1", turn, sized[2 * turn - 2 : 2 * turn])
    assert (await memory.load("c1", 100, max_tokens=35))[:2] == (4, [sized[0], *sized[-3:]])  # 30 of 35
    assert (await memory.load("c1", 100, max_tokens=1000))[:2] == (4, sized)
    legacy = [message(index) for index in range(2)]  # saved without counts: counted on load
    await memory.append_turn("c2", 1, legacy)
    size = count_tokens(legacy[1]["content"])
    assert (await memory.load("c2", 100, max_tokens=size))[:2] == (1, legacy)  # the first one is pinned


async def test_append_turn_records_the_turn_and_ignores_replays(any_redis: Redis) -> None:
    memory = WorkingMemory(any_redis)
    await save_turns(memory, "c1", turns=2)

    assert await memory.completed_turns("c1") == 2
    assert not await memory.append_turn("c1", 2, [message(98), message(99)])
    assert not await memory.append_turn("c1", 1, [message(98), message(99)])
    assert await memory.append_turn("c1", 2, [message(2), message(3)])  # a resumed turn's replay
    assert len((await memory.load("c1", 1000))[1]) == 4
    assert await memory.append_turn("c1", 3, [message(4)])
    assert await memory.completed_turns("c1") == 3


async def test_turns_appended_at_once_fare_as_one_by_one(any_redis: Redis) -> None:
    memory = WorkingMemory(any_redis)
    await save_turns(memory, "c1", turns=2)

    results = await memory.append_turns("c1", [
        (2, [message(2), message(3)]),  # a replay of the last saved turn
        (1, [message(98)]),  # a number taken by other messages
        (3, [message(4), message(5)]),
        (3, [message(4), message(6)]),  # taken now, by the batch's own turn
        (4, [message(7)]),
    ])

    assert results == [True, False, True, False, True]
    assert (await memory.load("c1", 1000))[:2] == (4, [message(index) for index in (0, 1, 2, 3, 4, 5, 7)])
    assert await memory.append_turns("c1", []) == []
    with pytest.raises(ValueError):
        await memory.append_turns("c1", [(5, [message(8)]), (6, [])])
    assert await memory.completed_turns("c1") == 4  # the valid turn before it was not written either


async def test_concurrent_saves_of_one_turn_write_it_once(any_redis: Redis) -> None:
    memory = WorkingMemory(any_redis)
    turn = [message(0), message(1)]

    results = await asyncio.gather(*(memory.append_turn("c1", 1, turn) for _ in range(10)))

    assert results == [True] * 10  # one wrote it, the others found it saved
    assert (await memory.load("c1", max_messages=10))[:2] == (1, turn)


async def test_chats_are_separate_and_clear_forgets_one(any_redis: Redis) -> None:
    memory = WorkingMemory(any_redis)
    await save_turns(memory, "c1", turns=2)
    await save_turns(memory, "c2", turns=1)

    await memory.clear("c1")

    assert len((await memory.load("c1", 1000))[1]) == 0
    assert await memory.completed_turns("c1") == 0
    assert len((await memory.load("c2", 1000))[1]) == 2
    assert await memory.append_turn("c1", 1, [message(0)])  # numbering starts again


@pytest.mark.parametrize("chat_id", ["}", "}{x}", "{x}", "a}b"])
async def test_a_chat_id_with_braces_keeps_its_keys_in_one_slot(any_redis: Redis, chat_id: str) -> None:
    memory = WorkingMemory(any_redis)
    messages = await save_turns(memory, chat_id, 2)
    assert (await memory.load(chat_id, max_messages=10))[:2] == (2, messages)
    assert not await memory.append_turn(chat_id, 1, [message(9)])  # the script reads both keys
    assert (await memory.load("other", max_messages=10))[:2] == (0, [])
    keys = [key async for key in any_redis.scan_iter(match="goat:*")]
    assert len(keys) == 2 and len({key_slot(key.encode()) for key in keys}) == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"role": "system", "content": "hi", "timestamp": 1.0},
        {"role": "user", "content": ["hi"], "timestamp": 1.0},
        {"role": "user", "content": None, "timestamp": 1.0},
        {"role": "user", "content": "hi", "timestamp": "yesterday"},
    ],
)
async def test_invalid_messages_are_refused_before_writing(any_redis: Redis, bad: dict) -> None:
    memory = WorkingMemory(any_redis)

    with pytest.raises(ValueError):
        await memory.append_turn("c1", 1, [message(0), bad])  # type: ignore[list-item]

    assert await any_redis.keys("*") == []


async def test_search_cache_digest_is_stable_and_parameter_sensitive() -> None:
    digest = SearchCache.digest("where did I go", k=5, after="2024-01-01")

    assert digest == SearchCache.digest("where did I go", after="2024-01-01", k=5)
    assert digest != SearchCache.digest("where did I go", k=6, after="2024-01-01")
    assert digest != SearchCache.digest("where did I go?", k=5, after="2024-01-01")
    assert len(digest) == 24 and int(digest, 16) >= 0


async def cached(cache: SearchCache, scope_key: str, digest: str) -> list[dict] | None:
    value, _ = await cache.lookup(scope_key, digest)
    return value


async def store(cache: SearchCache, scope_key: str, digest: str, value: list[dict]) -> None:
    _, generation = await cache.lookup(scope_key, digest)
    await cache.put(scope_key, digest, value, generation)


async def test_search_cache_put_get_with_ttl(any_redis: Redis) -> None:
    cache = SearchCache(any_redis, ttl_seconds=300)
    digest = SearchCache.digest("hiking", k=5)
    results = [{"id": "a", "content": "we hiked ✓", "distance": 0.25}]

    assert await cached(cache, "chat:1", digest) is None
    await store(cache, "chat:1", digest, results)

    assert await cached(cache, "chat:1", digest) == results
    [entry_key] = [key async for key in any_redis.scan_iter("*") if digest in key]
    assert 0 < await any_redis.ttl(entry_key) <= 300


async def test_search_cache_invalidate_drops_only_that_scope(any_redis: Redis) -> None:
    cache = SearchCache(any_redis, ttl_seconds=300)
    digest = SearchCache.digest("hiking")
    for scope in ("chat:1", "chat:2", "user:7"):
        await store(cache, scope, digest, [{"scope": scope}])

    await cache.invalidate("chat:1", "user:7")

    assert await cached(cache, "chat:1", digest) is None
    assert await cached(cache, "user:7", digest) is None
    assert await cached(cache, "chat:2", digest) == [{"scope": "chat:2"}]
    await store(cache, "chat:1", digest, [{"fresh": True}])
    assert await cached(cache, "chat:1", digest) == [{"fresh": True}]


async def test_search_cache_clear_drops_every_scope(any_redis: Redis) -> None:
    """In a cluster too, where a pipeline's unlink queues nothing."""
    cache = SearchCache(any_redis, ttl_seconds=300)
    digest = SearchCache.digest("hiking")
    for scope in ("chat:1", "chat:2", "user:7"):
        await store(cache, scope, digest, [{"scope": scope}])
    await cache.clear()
    assert [key async for key in any_redis.scan_iter("*:cache:*")] == []
    assert [await cached(cache, scope, digest) for scope in ("chat:1", "chat:2", "user:7")] == [None] * 3


async def test_search_cache_files_results_of_a_search_raced_by_a_write_under_the_old_generation(
    any_redis: Redis,
) -> None:
    cache = SearchCache(any_redis, ttl_seconds=300)
    digest = SearchCache.digest("hiking")
    missing, generation = await cache.lookup("chat:1", digest)
    assert missing is None
    await cache.invalidate("chat:1")  # an archive write lands while the search runs
    await cache.put("chat:1", digest, [{"stale": True}], generation)
    assert await cached(cache, "chat:1", digest) is None  # the stale results are never served
    _, current = await cache.lookup("chat:1", digest)
    await cache.put("chat:1", digest, [{"fresh": True}], current)
    assert await cached(cache, "chat:1", digest) == [{"fresh": True}]


async def test_search_cache_written_behind_is_read_by_the_same_search_and_never_outlives_a_drop(
    any_redis: Redis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A search's results are cached behind it (the turn goes on meanwhile); the same search asked
    again reads them, and a drop (forgetting a person) lets such a write land before it deletes,
    so none lands after it."""
    cache = SearchCache(any_redis, ttl_seconds=300)
    digest = SearchCache.digest("hiking")
    _, generation = await cache.lookup("chat:1", digest)
    cache.put_behind("chat:1", digest, [{"id": "a"}], generation)
    assert await cached(cache, "chat:1", digest) == [{"id": "a"}]

    gate, put = asyncio.Event(), cache.put

    async def slow_put(*args) -> None:
        await gate.wait()  # a write still under way as the drop starts: many round trips
        for _ in range(20):
            await any_redis.ping()
        await put(*args)

    monkeypatch.setattr(cache, "put", slow_put)
    other = SearchCache.digest("swimming")
    _, generation = await cache.lookup("chat:1", other)
    cache.put_behind("chat:1", other, [{"id": "b"}], generation)
    dropping = asyncio.ensure_future(cache.drop("chat:1"))
    gate.set()
    await dropping
    await cache.written()
    assert [key async for key in any_redis.scan_iter("goat:cache:*")] == []


async def test_a_search_that_outlives_an_invalidation_or_a_drop_writes_nothing(any_redis: Redis) -> None:
    """A search's results go to the cache only while its scope's generation is the one it was
    looked up under: a write or a forget in the scope meanwhile (in another process, or in a
    chat the search did not hold) leaves nothing to read, and a forget nothing in Redis."""
    cache = SearchCache(any_redis, ttl_seconds=300)
    digest = SearchCache.digest("hiking")
    await cache.invalidate("chat:1")  # a scope that has been written to
    _, before = await cache.lookup("chat:1", digest)
    await cache.invalidate("chat:1")
    await cache.put("chat:1", digest, [{"id": "stale"}], before)
    _, now = await cache.lookup("chat:1", digest)
    assert await cached(cache, "chat:1", digest) is None
    await cache.drop("chat:1")
    await cache.put("chat:1", digest, [{"id": "forgotten"}], now)
    assert [key async for key in any_redis.scan_iter("goat:cache:*")] == []
    _, untouched = await cache.lookup("chat:2", digest)  # a scope never written to, then forgotten
    await cache.drop("chat:2")
    await cache.put("chat:2", digest, [{"id": "forgotten"}], untouched)
    assert [key async for key in any_redis.scan_iter("goat:cache:*")] == []


def test_search_cache_needs_a_positive_ttl(aredis: Redis) -> None:
    with pytest.raises(ValueError):
        SearchCache(aredis, ttl_seconds=0)


# --------------------------------------------------------------------- facts


async def test_facts_upsert_get_delete_clear(any_redis: Redis) -> None:
    facts = RedisFactsStore(any_redis)
    assert isinstance(facts, FactsStore)

    await facts.upsert("u1", " city ", " Lisbon ")
    await facts.upsert("u1", "pet", "cat")
    await facts.upsert("u1", "pet", "dog")
    await facts.upsert("u2", "city", "Oslo")

    assert await facts.get_all("u1") == {"city": "Lisbon", "pet": "dog"}
    assert await facts.delete("u1", "pet")
    assert not await facts.delete("u1", "pet")
    await facts.clear("u1")
    assert await facts.get_all("u1") == {}
    assert await facts.get_all("u2") == {"city": "Oslo"}


@pytest.mark.parametrize(("key", "value"), [("", "x"), ("  ", "x"), ("k", " \n"), ("k", 3)])
async def test_facts_refuse_empty_keys_and_values(aredis: Redis, key: str, value: str) -> None:
    facts = RedisFactsStore(aredis)

    with pytest.raises(ValueError):
        await facts.upsert("u1", key, value)

    assert await facts.get_all("u1") == {}


async def test_stores_work_with_a_client_that_replies_in_bytes(redis_url: str) -> None:
    client = Redis.from_url(redis_url)  # no decode_responses, as the app creates it
    try:
        memory = WorkingMemory(client)
        cache = SearchCache(client, ttl_seconds=60)
        facts = RedisFactsStore(client)
        await memory.append_turn("c1", 1, [message(0)])
        await store(cache, "chat:1", "d", [{"id": "a"}])
        await facts.upsert("u1", "name", "Zoë")

        assert await memory.completed_turns("c1") == 1
        assert (await memory.load("c1", max_messages=5))[1] == [message(0)]
        assert await cached(cache, "chat:1", "d") == [{"id": "a"}]
        assert await facts.get_all("u1") == {"name": "Zoë"}
    finally:
        await client.aclose()


async def test_a_call_at_the_connection_limit_waits_for_a_free_connection(redis_url, monkeypatch) -> None:
    monkeypatch.setattr("memory.redis_clients.MAX_CONNECTIONS", 1)
    client = Redis.from_pool(waiting_pool(redis_url))
    try:
        # The one connection is busy in a blocking pop for 0.2 s; the GET waits for it (the
        # default pool would raise MaxConnectionsError at once).
        popped, got = await asyncio.gather(client.blpop(["goat:test:nothing"], timeout=0.2),
                                           client.get("goat:test:absent"))
        assert (popped, got) == (None, None)
    finally:
        await client.aclose()
