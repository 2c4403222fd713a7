"""The Redis clients of this process, one factory for everyone on GOAT's Redis: memory's stores,
the graph's checkpointer, the faces' own keys (the webhook's inbox, MCP's retried requests) and
the tests. Every connection carries this process's name, so that the embedded server can tell
this process's connections from other processes' (``memory/stores/redis_server.py``)."""

from __future__ import annotations

import os
import re

import redis
import redis.asyncio

MAX_CONNECTIONS = 100  # per pool
_CONNECTION_WAIT_S = 10.0  # for a free connection, before the call fails


def process_client_name() -> str:
    """The name this process's connections carry (CLIENT SETNAME), so that ``stop()`` can
    tell them from other processes' connections even when they are not closed yet."""
    return f"goat-{os.getpid()}"


def waiting_pool(url: str) -> redis.asyncio.BlockingConnectionPool:
    """An asyncio connection pool for ``url``, its connections named as this process's. A
    turn holds several at once (fan-out, checkpoints, its lock, the archiver): at the limit
    a caller waits for a free one rather than fail, as redis-py's default pool would."""
    return redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=_CONNECTION_WAIT_S,
        socket_connect_timeout=2, socket_timeout=5, client_name=process_client_name(),
    )


def async_client(url: str, *, cluster: bool = False) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
    """This process's asyncio client for ``url``: a waiting pool on one server, or with
    ``cluster`` a Redis Cluster client that finds every node from the one ``url`` names.

    The cluster client keeps up to ``MAX_CONNECTIONS`` connections per node and, at that
    limit, fails a call at once rather than wait (redis-py's cluster client has no waiting
    pool); GOAT bounds its own fan-out well below it (``redis_backend.gather_bounded``)."""
    if cluster:
        return redis.asyncio.RedisCluster.from_url(url, **_cluster_options())
    return redis.asyncio.Redis.from_pool(waiting_pool(url))


def sync_client(url: str, *, cluster: bool = False) -> redis.Redis | redis.RedisCluster:
    """This process's synchronous client for ``url`` (the checkpointer's sync API)."""
    if cluster:
        return redis.RedisCluster.from_url(url, **_cluster_options())
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, client_name=process_client_name())


def _cluster_options() -> dict[str, object]:
    return {"max_connections": MAX_CONNECTIONS, "socket_connect_timeout": 2, "socket_timeout": 5,
            "client_name": process_client_name()}



def glob_escaped(text: str) -> str:
    """``text`` with the characters SCAN's MATCH pattern reads as wildcards escaped."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


async def named_after(client: redis.asyncio.Redis | redis.asyncio.RedisCluster, stem: str) -> set[str]:
    """What follows ``stem`` in the names of the keys that start with it (SCAN: no server stalls)."""
    return {key.decode()[len(stem):] async for key in client.scan_iter(match=f"{glob_escaped(stem)}*", count=1000)}
