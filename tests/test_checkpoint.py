"""RedisCheckpointSaver against real Redis servers: LangGraph's conformance suite (on the
embedded 6.2, on Debian's 7.x and on a Redis Cluster of Debian's; async API and sync API),
then what the suite leaves out: restarts, binary and Unicode data, namespaces, retention,
round trips, lost scripts, records saved before checkpoints listed their values, and real
compiled graphs."""

from __future__ import annotations

import asyncio
import inspect
import operator
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypedDict

import pytest
import redis
import redis.asyncio
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import Capability
from langgraph.checkpoint.conformance.report import CapabilityReport
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ResponseError
from redis.retry import Retry

from conftest import StartEmbedded
from graph.checkpoint import RedisCheckpointSaver
from memory.redis_clients import process_client_name

# ---------------------------------------------------------------- conformance


class SyncBackedSaver(RedisCheckpointSaver):
    """The async API answered by the sync one, so that the suite also checks the sync path."""

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(self, config: RunnableConfig | None, **options: Any) -> AsyncIterator[CheckpointTuple]:
        for item in self.list(config, **options):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        self.delete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.copy_thread(source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self.prune(thread_ids, strategy=strategy)


async def conformance(make_saver: Callable[[], RedisCheckpointSaver]) -> CapabilityReport:
    @checkpointer_test(name="RedisCheckpointSaver")
    async def fresh_saver() -> AsyncIterator[RedisCheckpointSaver]:
        saver = make_saver()
        try:
            yield saver
        finally:
            await saver.aclose()

    return await validate(fresh_saver)


def assert_full(report: CapabilityReport) -> None:
    passed = {name for name, result in report.results.items() if result.detected and result.passed}
    assert passed == {capability.value for capability in Capability}, report.to_dict()
    assert report.conformance_level() == "FULL"


class Server(NamedTuple):
    url: str
    cluster: bool


_CLUSTER = pytest.param("cluster-7", marks=pytest.mark.slow)


def server(request: pytest.FixtureRequest) -> Server:
    fixture = {"embedded-6.2": "redis_url", "debian-7": "system_redis_url", "cluster-7": "cluster_url"}[request.param]
    return Server(request.getfixturevalue(fixture), request.param == "cluster-7")


@pytest.fixture(params=["embedded-6.2", "debian-7", _CLUSTER])
def any_redis(request: pytest.FixtureRequest) -> Server:
    """The embedded server, Debian's, and a 3-master Redis Cluster of Debian's."""
    return server(request)


async def test_conformance_is_full_with_default_retention(any_redis: Server) -> None:
    prefix = f"conformance:{uuid.uuid4().hex}"  # Debian's server is shared by the session
    report = await conformance(lambda: RedisCheckpointSaver.from_url(any_redis.url, cluster=any_redis.cluster,
                                                                     prefix=prefix))
    assert_full(report)


@pytest.fixture(params=["embedded-6.2", _CLUSTER])
def sync_redis(request: pytest.FixtureRequest) -> Server:
    return server(request)


async def test_conformance_of_the_sync_api_is_full(sync_redis: Server) -> None:
    report = await conformance(lambda: SyncBackedSaver.from_url(sync_redis.url, cluster=sync_redis.cluster))
    assert_full(report)


# ---------------------------------------------------------------- helpers


def checkpoint(versions: dict[str, Any] | None = None, **values: Any) -> Checkpoint:
    return generate_checkpoint(channel_values=values, channel_versions=versions or {})


def stored_keys(client: redis.Redis, saver: RedisCheckpointSaver, thread_id: str) -> list[bytes]:
    return sorted(client.scan_iter(match=saver.key_pattern(thread_id), count=1000))


def stored_entries(client: redis.Redis, keys: list[bytes]) -> int:
    """Hash fields and sorted-set members under ``keys``: what a thread holds, whatever its sizes."""
    return sum(client.hlen(key) if client.type(key) == b"hash" else client.zcard(key) for key in keys)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as plain:
        yield plain


def child_config(saved: RunnableConfig) -> RunnableConfig:
    """The config a checkpoint that follows ``saved`` is put with."""
    return {"configurable": {**saved["configurable"]}}


def count_round_trips(pool: redis.ConnectionPool | redis.asyncio.ConnectionPool) -> list[int]:
    """``[n]``: what the pool's connections send from now on, one packet per command or
    pipeline, so one per round trip. A connection is counted from when it is handed out, so a
    new one's handshake is not."""
    sent = [0]
    counted_connections: set[int] = set()

    def counting(connection: Any) -> Any:
        if id(connection) not in counted_connections:  # handed out again after a release
            counted_connections.add(id(connection))
            send = connection.send_packed_command

            def counted(*args: Any, **kwargs: Any) -> Any:
                sent[0] += 1
                return send(*args, **kwargs)

            connection.send_packed_command = counted
        return connection

    hand_out = pool.get_connection
    if inspect.iscoroutinefunction(hand_out):

        async def get_connection(*args: Any, **kwargs: Any) -> Any:
            return counting(await hand_out(*args, **kwargs))
    else:

        def get_connection(*args: Any, **kwargs: Any) -> Any:
            return counting(hand_out(*args, **kwargs))

    pool.get_connection = get_connection
    return sent


# ---------------------------------------------------------------- restarts, data, namespaces


async def test_a_new_saver_sees_the_checkpoint_and_its_pending_writes(redis_url: str) -> None:
    config = {"configurable": {"thread_id": "chat-1", "checkpoint_ns": ""}}
    async with RedisCheckpointSaver.from_url(redis_url) as before_restart:
        saved = await before_restart.aput(
            config, checkpoint(reply="hello", versions={"reply": "1"}), {"source": "loop", "step": 1}, {"reply": "1"}
        )
        await before_restart.aput_writes(saved, [("reply", "next"), ("turn", 2)], "task-b", "~path, b")
        await before_restart.aput_writes(saved, [(ERROR, "boom"), ("reply", "first")], "task-a", "~path, a")

    expected_writes = [
        ("task-a", ERROR, "boom"),  # writes_sort_key order: task path, task id, index
        ("task-a", "reply", "first"),
        ("task-b", "reply", "next"),
        ("task-b", "turn", 2),
    ]
    async with RedisCheckpointSaver.from_url(redis_url) as after_restart:
        found = await after_restart.aget_tuple(config)
    with RedisCheckpointSaver.from_url(redis_url) as sync_after_restart:
        found_sync = sync_after_restart.get_tuple(config)
    for tup in (found, found_sync):
        assert tup is not None
        assert tup.config["configurable"]["checkpoint_id"] == saved["configurable"]["checkpoint_id"]
        assert tup.checkpoint["channel_values"] == {"reply": "hello"}
        assert tup.pending_writes == expected_writes


async def test_binary_and_unicode_data_round_trip_and_a_thread_keeps_one_slot(
    redis_url: str, client: redis.Redis
) -> None:
    thread_id = "chat {42}: ș 🐐 *?[x]"  # braces, colons, glob characters, non-ASCII
    ns = "sub:graph|ț{1}:2"
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}
    values = {
        "every byte": bytes(range(256)),
        "text": "NUL \x00, CR\r\n, ș, 🐐, \u202e",
        "nested": {"bytes": b"\x00\xff", "list": [1.5, None, "ü"]},
        "chan:nel/ü": "a channel name that needs quoting",
    }
    versions = {name: "1" for name in values}
    async with RedisCheckpointSaver.from_url(redis_url) as saver:
        saved = await saver.aput(config, checkpoint(versions, **values), {"source": "loop", "step": 0}, versions)
        writes = [("chan:nel/ü", b"\x00write\xff"), (INTERRUPT, {"q": "ș?"})]
        await saver.aput_writes(saved, writes, "task:ü", "p:ț")
        found = await saver.aget_tuple(saved)
        listed = [tup async for tup in saver.alist({"configurable": {"thread_id": thread_id}})]
        every_thread = [tup async for tup in saver.alist(None)]

    assert found is not None
    assert found.checkpoint["channel_values"] == values
    assert found.config == saved == {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns,
                                                      "checkpoint_id": found.checkpoint["id"]}}  # fmt: skip
    # The interrupt's index is negative (WRITES_IDX_MAP), so it sorts first.
    assert found.pending_writes == [("task:ü", INTERRUPT, {"q": "ș?"}), ("task:ü", "chan:nel/ü", b"\x00write\xff")]
    assert [tup.checkpoint["channel_values"] for tup in listed] == [values]
    assert [tup.config["configurable"]["thread_id"] for tup in every_thread] == [thread_id]
    keys = stored_keys(client, saver, thread_id)
    assert len(keys) == 3  # the index, the checkpoint, the channel values
    assert len({key_slot(key) for key in keys}) == 1


async def test_namespaces_are_kept_apart_even_when_their_names_overlap(redis_url: str) -> None:
    namespaces = ["", "a", "a:b", "ab", "a|b", "a;"]
    thread = "chat-ns"
    saved: dict[str, list[str]] = {ns: [] for ns in namespaces}
    async with RedisCheckpointSaver.from_url(redis_url) as saver:
        for round_ in range(2):
            for ns in namespaces:
                config = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
                if saved[ns]:
                    config["configurable"]["checkpoint_id"] = saved[ns][-1]
                stored = await saver.aput(
                    config, checkpoint(where=f"{ns}/{round_}", versions={"where": str(round_)}),
                    {"source": "loop", "step": round_}, {"where": str(round_)},
                )  # fmt: skip
                saved[ns].append(stored["configurable"]["checkpoint_id"])

        for ns in namespaces:
            config = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
            latest = await saver.aget_tuple(config)
            assert latest is not None and latest.checkpoint["channel_values"] == {"where": f"{ns}/1"}
            assert latest.parent_config["configurable"]["checkpoint_id"] == saved[ns][0]
            listed = [tup.checkpoint["id"] async for tup in saver.alist(config)]
            assert listed == saved[ns][::-1]

        everything = [tup async for tup in saver.alist({"configurable": {"thread_id": thread}})]
        all_ids = [tup.checkpoint["id"] for tup in everything]
        assert all_ids == sorted((i for ids in saved.values() for i in ids), reverse=True)
        assert {tup.config["configurable"]["checkpoint_ns"] for tup in everything} == set(namespaces)

        await saver.aprune([thread], strategy="keep_latest")
        kept = [tup async for tup in saver.alist({"configurable": {"thread_id": thread}})]
        assert sorted(tup.checkpoint["id"] for tup in kept) == sorted(ids[-1] for ids in saved.values())

        await saver.adelete_thread(thread)
        assert [tup async for tup in saver.alist(None)] == []


def test_list_filters_and_limits_across_pages(redis_url: str) -> None:
    config = {"configurable": {"thread_id": "chat-long", "checkpoint_ns": ""}}
    ids: list[str] = []
    with RedisCheckpointSaver.from_url(redis_url, keep_turns=None) as saver:
        for step in range(130):  # several pages of checkpoints
            parent = {"configurable": {**config["configurable"], "checkpoint_id": ids[-1]}} if ids else config
            source = "input" if step % 3 == 0 else "loop"
            saved = saver.put(parent, checkpoint(), {"source": source, "step": step}, {})
            ids.append(saved["configurable"]["checkpoint_id"])
        inputs = [i for step, i in enumerate(ids) if step % 3 == 0]

        listed = [tup.checkpoint["id"] for tup in saver.list(config, filter={"source": "input"}, limit=30)]
        assert listed == inputs[::-1][:30]
        before = {"configurable": {"checkpoint_id": ids[100]}}
        listed = [tup.checkpoint["id"] for tup in saver.list(config, filter={"source": "input"}, before=before)]
        assert listed == [i for i in inputs if i < ids[100]][::-1]
        assert [tup.checkpoint["id"] for tup in saver.list(config, limit=75)] == ids[::-1][:75]


def test_retention_drops_the_old_turns_of_every_namespace(redis_url: str) -> None:
    # Quoted, "0.early" sorts before the root's members (":<id>") and "late" after them.
    steps = [("", "input"), ("0.early", "loop"), ("late", "loop"), ("", "loop")]
    thread = "chat-subgraphs"
    saved: list[list[str]] = []
    with RedisCheckpointSaver.from_url(redis_url, keep_turns=2) as saver:
        for turn in range(3):
            saved.append([])
            for ns, source in steps:
                config = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
                versions = {"where": str(turn)}
                stored = saver.put(config, checkpoint(versions, where=f"{ns}/{turn}"), {"source": source, "step": turn},
                                   versions)  # fmt: skip
                saved[-1].append(stored["configurable"]["checkpoint_id"])
        kept = sorted(tup.checkpoint["id"] for tup in saver.list({"configurable": {"thread_id": thread}}))
        latest = [saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ns}}) for ns, _ in steps]
    assert kept == sorted(saved[1] + saved[2])  # the third turn's start dropped the first turn, everywhere
    assert [tup.checkpoint["channel_values"] for tup in latest] == [{"where": f"{ns}/2"} for ns, _ in steps]


# ---------------------------------------------------------------- round trips and lost scripts


async def test_each_call_is_one_round_trip_and_a_turns_start_prunes_within_its_put(redis_url: str) -> None:
    config = {"configurable": {"thread_id": "chat-trips", "checkpoint_ns": ""}}
    client = redis.Redis.from_url(redis_url)
    async with RedisCheckpointSaver(client, redis.asyncio.Redis.from_url(redis_url), keep_turns=1) as saver:
        first = saver.put(config, checkpoint({"reply": "1"}, reply="one"), {"source": "input", "step": -1},
                          {"reply": "1"})  # fmt: skip
        sent = count_round_trips(client.connection_pool)
        second = saver.put(child_config(first), checkpoint({"reply": "2"}, reply="two"),
                           {"source": "input", "step": -1}, {"reply": "2"})  # fmt: skip
        saver.put_writes(second, [("reply", "three")], "task-1")
        found = saver.get_tuple(config)
        assert sent == [3]
        assert found.checkpoint["channel_values"] == {"reply": "two"}
        assert found.pending_writes == [("task-1", "reply", "three")]
        assert [tup.config for tup in saver.list(config)] == [second]  # the first turn was pruned


async def test_a_tasks_writes_go_in_one_round_trip_with_the_checkpoint_that_follows(redis_url: str) -> None:
    config = {"configurable": {"thread_id": "chat-together", "checkpoint_ns": ""}}
    async_client = redis.asyncio.Redis.from_url(redis_url)
    async with RedisCheckpointSaver(redis.Redis.from_url(redis_url), async_client) as saver:
        first = await saver.aput(config, checkpoint(), {"source": "input", "step": -1}, {})
        sent = count_round_trips(async_client.connection_pool)
        _, second = await asyncio.gather(  # as LangGraph does: a step's writes, then its checkpoint
            saver.aput_writes(first, [("reply", "hi"), (ERROR, "boom")], "task-1"),
            saver.aput(child_config(first), checkpoint({"reply": "1"}, reply="hi"), {"source": "loop", "step": 0},
                       {"reply": "1"}),
        )  # fmt: skip
        assert sent == [1]
        assert (await saver.aget_tuple(first)).pending_writes == [("task-1", ERROR, "boom"), ("task-1", "reply", "hi")]
        assert (await saver.aget_tuple(config)).config == second


async def test_a_write_that_fails_fails_alone_in_a_shared_round_trip(redis_url: str, client: redis.Redis) -> None:
    config = {"configurable": {"thread_id": "chat-broken", "checkpoint_ns": ""}}
    async with RedisCheckpointSaver.from_url(redis_url) as saver:
        first = await saver.aput(config, checkpoint(), {"source": "input", "step": -1}, {})
        keys = stored_keys(client, saver, "chat-broken")
        (record,) = [key for key in keys if client.type(key) == b"hash" and client.hexists(key, "checkpoint")]
        client.delete(record)
        client.set(record, "not a hash")  # its writes cannot be stored
        failed, second = await asyncio.gather(
            saver.aput_writes(first, [("reply", "lost")], "task-1"),
            saver.aput(child_config(first), checkpoint(), {"source": "loop", "step": 0}, {}),
            return_exceptions=True,
        )
        assert isinstance(failed, ResponseError) and "WRONGTYPE" in str(failed)
        assert (await saver.aget_tuple(config)).config == second


@pytest.mark.slow
async def test_when_redis_is_gone_each_caller_of_a_shared_round_trip_gets_the_error(
    start_embedded: StartEmbedded, tmp_path: Path
) -> None:
    server = start_embedded(tmp_path / "short-lived")
    options: dict[str, Any] = {"retry": Retry(NoBackoff(), retries=0), "client_name": process_client_name()}
    config = {"configurable": {"thread_id": "chat-gone", "checkpoint_ns": ""}}
    saver = RedisCheckpointSaver(redis.Redis.from_url(server.url, **options),
                                 redis.asyncio.Redis.from_url(server.url, **options))  # fmt: skip
    first = await saver.aput(config, checkpoint(), {"source": "input", "step": -1}, {})
    server.stop()
    outcomes = await asyncio.wait_for(  # a guard: a caller left waiting would hang the test
        asyncio.gather(
            saver.aput_writes(first, [("reply", "lost")], "task-1"),
            saver.aput(child_config(first), checkpoint(), {"source": "loop", "step": 0}, {}),
            return_exceptions=True,
        ),
        timeout=60,
    )
    await saver.aclose()
    assert [type(outcome) for outcome in outcomes] == [redis.ConnectionError] * 2, outcomes


async def test_scripts_the_server_lost_are_loaded_again(redis_url: str, client: redis.Redis) -> None:
    config = {"configurable": {"thread_id": "chat-flushed", "checkpoint_ns": ""}}
    async with RedisCheckpointSaver.from_url(redis_url) as saver:
        first = await saver.aput(config, checkpoint(), {"source": "input", "step": -1}, {})
        client.script_flush()  # as after a restart: the next round trip carries a write and a put
        await asyncio.gather(
            saver.aput_writes(first, [("reply", "kept")], "task-1"),
            saver.aput(child_config(first), checkpoint({"reply": "1"}, reply="kept"), {"source": "loop", "step": 0},
                       {"reply": "1"}),
        )  # fmt: skip
        client.script_flush()
        assert (await saver.aget_tuple(first)).pending_writes == [("task-1", "reply", "kept")]
        client.script_flush()
        assert saver.get_tuple(config).checkpoint["channel_values"] == {"reply": "kept"}


# ---------------------------------------------------------------- graphs


class Turn(TypedDict, total=False):
    message: str
    persona: str  # written on the first turn only: later turns still need its old value
    reply: str
    approved: str
    log: Annotated[list[str], operator.add]


def load_persona(state: Turn) -> dict[str, Any]:
    return {} if state.get("persona") else {"persona": "a patient goat"}


def answer(state: Turn) -> dict[str, Any]:
    return {"reply": f"{state['persona']} says {state['message'].upper()}", "log": [state["message"]]}


def approve(state: Turn) -> dict[str, Any]:
    return {"approved": interrupt({"question": "send it?", "reply": state["reply"]})}


def build(saver: RedisCheckpointSaver, *, ask: bool = False) -> CompiledStateGraph:
    builder = StateGraph(Turn)
    builder.add_node("load_persona", load_persona)
    builder.add_node("answer", answer)
    builder.add_edge(START, "load_persona")
    builder.add_edge("load_persona", "answer")
    if ask:
        builder.add_node("approve", approve)
        builder.add_edge("answer", "approve")
        builder.add_edge("approve", END)
    else:
        builder.add_edge("answer", END)
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize("api", ["async", "sync"])
async def test_an_interrupted_turn_resumes_with_a_new_saver(redis_url: str, api: str) -> None:
    config = {"configurable": {"thread_id": f"chat-{api}"}}

    async def run(graph: CompiledStateGraph, graph_input: Any) -> dict[str, Any]:
        return await graph.ainvoke(graph_input, config) if api == "async" else graph.invoke(graph_input, config)

    async with RedisCheckpointSaver.from_url(redis_url, keep_turns=1) as saver:
        paused = await run(build(saver, ask=True), {"message": "hi"})
    assert paused["__interrupt__"][0].value == {"question": "send it?", "reply": "a patient goat says HI"}

    async with RedisCheckpointSaver.from_url(redis_url, keep_turns=1) as restarted:
        graph = build(restarted, ask=True)
        assert graph.get_state(config).next == ("approve",)
        done = await run(graph, Command(resume="yes"))
        assert done == {"message": "hi", "persona": "a patient goat", "reply": "a patient goat says HI",
                        "approved": "yes", "log": ["hi"]}  # fmt: skip
        assert graph.get_state(config).next == ()
        second = await run(graph, {"message": "again"})
        assert second["log"] == ["hi", "again"] and "__interrupt__" in second


async def test_retention_keeps_the_recent_turns_and_stops_growing(redis_url: str, client: redis.Redis) -> None:
    config = {"configurable": {"thread_id": "chat-r"}}
    async with RedisCheckpointSaver.from_url(redis_url, keep_turns=2) as saver:
        graph = build(saver)
        held: list[tuple[int, int]] = []
        for turn in range(1, 9):
            state = await graph.ainvoke({"message": f"m{turn:02}"}, config)
            keys = stored_keys(client, saver, "chat-r")
            held.append((len(keys), stored_entries(client, keys)))
        history: list[CheckpointTuple] = [tup async for tup in saver.alist(config)]

    # The last turn still reads the persona that only the first turn wrote.
    assert state["reply"] == "a patient goat says M08"
    assert state["log"] == [f"m{turn:02}" for turn in range(1, 9)]
    inputs = [tup for tup in history if tup.metadata["source"] == "input"]
    assert [tup.checkpoint["channel_values"]["__start__"]["message"] for tup in inputs] == ["m08", "m07"]
    assert history[-1].checkpoint["id"] == inputs[-1].checkpoint["id"]  # nothing older than turn 7
    # From turn 3 on the thread holds two turns' keys, and the same fields and members, every turn.
    assert held[2][0] == held[1][0]
    assert len(set(held[2:])) == 1, held


async def test_without_retention_every_turn_stays(redis_url: str, client: redis.Redis) -> None:
    config = {"configurable": {"thread_id": "chat-all"}}
    async with RedisCheckpointSaver.from_url(redis_url, keep_turns=None) as saver:
        graph = build(saver)
        for turn in range(1, 5):
            await graph.ainvoke({"message": f"m{turn}"}, config)
        inputs = [tup async for tup in saver.alist(config, filter={"source": "input"})]
    assert len(inputs) == 4


async def test_checkpoints_saved_before_value_lists_keep_their_values(redis_url: str, client: redis.Redis) -> None:
    """Records without the ``values`` list (an earlier layout) read their values through their
    channel versions, and pruning keeps every value while one of them is kept."""
    old, fresh = {"configurable": {"thread_id": "chat-old"}}, {"configurable": {"thread_id": "chat-fresh"}}
    async with RedisCheckpointSaver.from_url(redis_url, keep_turns=2) as saver:
        graph = build(saver)

        async def turn(message: str) -> tuple[dict[str, Any], dict[str, Any]]:
            return await graph.ainvoke({"message": message}, old), await graph.ainvoke({"message": message}, fresh)

        await turn("m1")
        await turn("m2")
        for key in stored_keys(client, saver, "chat-old"):
            if client.type(key) == b"hash":
                client.hdel(key, "values")
        assert (await graph.aget_state(old)).values == (await graph.aget_state(fresh)).values

        await turn("m3")  # drops turn 1; turn 2, kept, lists nothing: every value stays
        history = [[tup.checkpoint["channel_values"] async for tup in saver.alist(config)] for config in (old, fresh)]
        assert history[0] == history[1]
        states = await turn("m4")  # drops turn 2: the old records are gone
        assert states[0] == states[1] and states[0]["persona"] == "a patient goat"
        held = [stored_entries(client, stored_keys(client, saver, thread)) for thread in ("chat-old", "chat-fresh")]
        assert held[0] == held[1]


def test_a_fork_does_not_overwrite_the_values_of_later_checkpoints(redis_url: str) -> None:
    config = {"configurable": {"thread_id": "chat-fork"}}
    with RedisCheckpointSaver.from_url(redis_url, keep_turns=None) as saver:
        graph = build(saver)
        graph.invoke({"message": "hi"}, config)
        latest = graph.get_state(config)
        before_answer = next(s for s in graph.get_state_history(config) if s.next == ("answer",))
        graph.update_state(before_answer.config, {"reply": "forked"})  # same channel, same step
        assert saver.get_tuple(latest.config).checkpoint["channel_values"]["reply"] == "a patient goat says HI"


# ---------------------------------------------------------------- bad input


def test_bad_settings_and_arguments_get_clear_errors(redis_url: str) -> None:
    for keep_turns in (0, -1, True):
        with pytest.raises(ValueError, match="keep_turns"):
            RedisCheckpointSaver.from_url(redis_url, keep_turns=keep_turns)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisCheckpointSaver(
            redis.Redis.from_url(redis_url, decode_responses=True), redis.asyncio.Redis.from_url(redis_url)
        )
    with RedisCheckpointSaver.from_url(redis_url) as saver:
        config = {"configurable": {"thread_id": "chat-x", "checkpoint_ns": ""}}
        saver.put(config, checkpoint(), {"source": "input", "step": -1}, {})
        with pytest.raises(ValueError, match="thread_id"):
            saver.get_tuple({"configurable": {"checkpoint_ns": ""}})
        with pytest.raises(ValueError, match="prune strategy"):
            saver.prune(["chat-x"], strategy="keep_some")
        assert saver.get_tuple(config) is not None  # nothing lost


async def test_a_run_resumed_within_resuming_reads_its_own_checkpoint_without_a_round_trip(redis_url: str) -> None:
    """What ``resuming`` serves is what Redis holds; a write through the saver sends reads back to Redis."""
    config = {"configurable": {"thread_id": "resumed"}}
    pool = redis.asyncio.Redis.from_url(redis_url)
    async with RedisCheckpointSaver(redis.Redis.from_url(redis_url), pool) as saver:
        graph = build(saver)
        await graph.ainvoke({"message": "first"}, config)  # a previous turn, read from Redis
        with saver.resuming("resumed"):
            await graph.ainvoke({"message": "hi"}, config, interrupt_before=["answer"], durability="exit")
            sent = count_round_trips(pool.connection_pool)
            served = await saver.aget_tuple(config)
            assert sent == [0]
            async with RedisCheckpointSaver.from_url(redis_url) as other:
                stored = await other.aget_tuple(config)
            assert served == stored and served is not stored
            done = await graph.ainvoke(None, config, durability="exit")
            assert done["reply"] == "a patient goat says HI" and done["log"] == ["first", "hi"]
            latest = (await saver.aget_tuple(config)).config
            assert sent == [1]  # the final checkpoint's put alone
            await saver.aput_writes(latest, [("reply", "edited")], "a-task")
            assert (await saver.aget_tuple(config)).pending_writes == [("a-task", "reply", "edited")]
            assert sent == [3]
        assert (await saver.aget_tuple(config)).checkpoint["channel_values"]["reply"] == "a patient goat says HI"
