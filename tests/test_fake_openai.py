"""The loopback FakeOpenAI server, driven by the REAL langchain-openai/openai clients."""

from __future__ import annotations

import asyncio
import json
import threading
import warnings

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

try:  # works whether or not tests/ is a package
    from bench.support.fakes import FakeOpenAI, text_reply
except ImportError:  # pragma: no cover - depends on pytest's rootdir/sys.path
    from bench.support.fakes import FakeOpenAI, text_reply


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


def make_llm(fake: FakeOpenAI, **kwargs) -> ChatOpenAI:
    # Its own async HTTP client, as nodes/services.py gives the model: langchain-openai's default is
    # cached by base URL, and a later test's fake on a port the OS hands out again would meet a
    # pooled connection of this test's closed event loop.
    return ChatOpenAI(
        model="fake-model", api_key="test-key", base_url=fake.base_url, max_retries=0,
        http_async_client=httpx.AsyncClient(), **kwargs
    )


@tool
def get_weather(city: str, unit: str = "celsius") -> str:
    """Get the current weather for a city."""
    return f"sunny in {city}"


@tool
def search_memory(query: str, after: str | None = None) -> str:
    """Search long-term memory."""
    return "nothing"


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    # The wire format must be close enough that neither SDK complains.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=ResourceWarning)
        yield


# --------------------------------------------------------------------------- #
# Text answers
# --------------------------------------------------------------------------- #
async def test_ainvoke_returns_scripted_text_and_records_request(fake):
    fake.reply("Bucharest is lovely in spring.")
    llm = make_llm(fake)
    msg = await llm.ainvoke([SystemMessage("be brief"), HumanMessage("Tell me about Bucharest")])

    assert isinstance(msg, AIMessage)
    assert msg.content == "Bucharest is lovely in spring."
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.response_metadata["model_name"] == "fake-model"
    assert msg.usage_metadata["output_tokens"] > 0
    assert msg.usage_metadata["total_tokens"] == (
        msg.usage_metadata["input_tokens"] + msg.usage_metadata["output_tokens"]
    )

    [req] = fake.requests
    assert req["model"] == "fake-model"
    assert not req.get("stream")
    assert req["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "Tell me about Bucharest"},
    ]
    assert fake.request_headers[0]["authorization"] == "Bearer test-key"
    assert fake.pending == 0


async def test_queue_is_fifo_then_default_reply(fake):
    fake.reply("first").reply("second")
    fake.default_reply = "fallback"
    llm = make_llm(fake)
    got = [(await llm.ainvoke("x")).content for _ in range(3)]
    assert got == ["first", "second", "fallback"]
    assert len(fake.requests) == 3


def test_sync_invoke_and_default_ok():
    with FakeOpenAI() as fake:
        assert make_llm(fake).invoke("hello").content == "ok"
        assert fake.last_request["messages"][-1] == {"role": "user", "content": "hello"}


async def test_astream_yields_several_chunks(fake):
    text = "The vet appointment is on Tuesday at ten."
    fake.reply(text)
    llm = make_llm(fake)
    chunks = [c async for c in llm.astream("When is the vet?")]

    contents = [c.content for c in chunks if c.content]
    assert len(contents) >= 3
    assert "".join(contents) == text
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert full.content == text
    assert full.response_metadata.get("finish_reason") == "stop"
    req = fake.last_request
    assert req["stream"] is True


async def test_astream_reports_usage_when_requested(fake):
    fake.reply("one two three four")
    llm = make_llm(fake, stream_usage=True)
    full = None
    async for c in llm.astream("count"):
        full = c if full is None else full + c
    assert full.content == "one two three four"
    assert full.usage_metadata is not None
    assert full.usage_metadata["output_tokens"] == 4
    assert fake.last_request["stream_options"] == {"include_usage": True}


# --------------------------------------------------------------------------- #
# Tool calls
# --------------------------------------------------------------------------- #
async def test_bind_tools_non_streaming(fake):
    fake.reply_tool_calls(
        [
            {"name": "get_weather", "arguments": {"city": "Cluj-Napoca", "unit": "celsius"}},
            {"name": "search_memory", "arguments": {"query": "vet name"}},
        ]
    )
    llm = make_llm(fake).bind_tools([get_weather, search_memory])
    msg = await llm.ainvoke("Weather in Cluj, and who is my vet?")

    assert msg.response_metadata["finish_reason"] == "tool_calls"
    assert [(tc["name"], tc["args"], tc["id"]) for tc in msg.tool_calls] == [
        ("get_weather", {"city": "Cluj-Napoca", "unit": "celsius"}, "call_1"),
        ("search_memory", {"query": "vet name"}, "call_2"),
    ]
    assert msg.invalid_tool_calls == []

    req = fake.last_request
    names = [t["function"]["name"] for t in req["tools"]]
    assert names == ["get_weather", "search_memory"]
    assert req["tools"][0]["type"] == "function"
    assert "city" in req["tools"][0]["function"]["parameters"]["properties"]
    assert req["messages"][-1]["content"] == "Weather in Cluj, and who is my vet?"


async def test_bind_tools_streaming(fake):
    fake.reply_tool_calls(
        [{"name": "get_weather", "arguments": {"city": "Sibiu, Romania", "unit": "fahrenheit"}}]
    )
    llm = make_llm(fake).bind_tools([get_weather])
    full = None
    n = 0
    async for c in llm.astream("weather in Sibiu?"):
        n += 1
        full = c if full is None else full + c
    assert n >= 4  # role, name, argument pieces, finish
    assert full.tool_calls == [
        {
            "name": "get_weather",
            "args": {"city": "Sibiu, Romania", "unit": "fahrenheit"},
            "id": "call_1",
            "type": "tool_call",
        }
    ]
    assert full.response_metadata.get("finish_reason") == "tool_calls"
    assert fake.last_request["tools"][0]["function"]["name"] == "get_weather"


async def test_tool_round_trip_is_recorded(fake):
    fake.reply_tool_calls([{"name": "get_weather", "arguments": {"city": "Iasi"}}])
    fake.reply("It is sunny in Iasi.")
    llm = make_llm(fake)
    first = await llm.bind_tools([get_weather]).ainvoke("weather in Iasi?")
    tc = first.tool_calls[0]
    result = get_weather.invoke(tc["args"])
    final = await llm.ainvoke(
        [HumanMessage("weather in Iasi?"), first, ToolMessage(result, tool_call_id=tc["id"])]
    )
    assert final.content == "It is sunny in Iasi."
    msgs = fake.requests[1]["messages"]
    assert msgs[1]["role"] == "assistant"
    assert msgs[1]["tool_calls"][0]["id"] == "call_1"
    assert json.loads(msgs[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Iasi"}
    assert msgs[2] == {"role": "tool", "content": "sunny in Iasi", "tool_call_id": "call_1"}
    assert "tools" not in fake.requests[1]  # second call made without tools


# --------------------------------------------------------------------------- #
# Errors and auth
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (500, openai.InternalServerError),
        (429, openai.RateLimitError),
        (400, openai.BadRequestError),
    ],
)
async def test_fail_raises_sdk_error(fake, status, exc):
    fake.fail(status=status, message="scripted failure")
    llm = make_llm(fake)
    with pytest.raises(exc) as info:
        await llm.ainvoke("hi")
    assert info.value.status_code == status
    assert "scripted failure" in str(info.value)
    assert info.value.body["message"] == "scripted failure"
    assert len(fake.requests) == 1  # max_retries=0: no retry
    # the next call is served normally
    assert (await llm.ainvoke("again")).content == "ok"


async def test_fail_while_streaming_raises(fake):
    fake.fail(status=503, message="overloaded")
    llm = make_llm(fake)
    with pytest.raises(openai.InternalServerError):
        async for _ in llm.astream("hi"):
            pass


def test_missing_authorization_is_401(fake):
    r = httpx.post(
        f"{fake.base_url}/chat/completions",
        json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 401
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert fake.requests == []  # refused requests are not recorded


def test_wrong_key_rejected_when_api_key_configured():
    with FakeOpenAI(api_key="right-key") as fake:
        llm = make_llm(fake)  # sends "test-key"
        with pytest.raises(openai.AuthenticationError):
            llm.invoke("hi")


def test_unknown_path_and_bad_json(fake):
    h = {"Authorization": "Bearer k"}
    assert httpx.get(f"{fake.base_url}/nope", headers=h).status_code == 404
    r = httpx.post(f"{fake.base_url}/chat/completions", headers=h, content=b"{not json")
    assert r.status_code == 400 and "error" in r.json()


# --------------------------------------------------------------------------- #
# Wire format, validated against the SDK's own pydantic types
# --------------------------------------------------------------------------- #
def test_wire_format_validates_against_openai_types(fake):
    h = {"Authorization": "Bearer k"}
    body = {"model": "m-1", "messages": [{"role": "user", "content": "hi"}]}

    fake.reply("hello world again")
    r = httpx.post(f"{fake.base_url}/chat/completions", headers=h, json=body)
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-request-id"]
    done = ChatCompletion.model_validate(r.json())
    assert done.object == "chat.completion"
    assert done.model == "m-1"
    assert done.choices[0].message.content == "hello world again"
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens

    fake.reply_tool_calls([{"name": "f", "arguments": {"a": 1}}], content=None)
    stream_body = dict(body, stream=True, stream_options={"include_usage": True})
    with httpx.stream("POST", f"{fake.base_url}/chat/completions", headers=h, json=stream_body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(ln[6:])) for ln in lines[:-1]]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    args = "".join(
        tc.function.arguments or ""
        for c in chunks
        for ch in c.choices
        for tc in (ch.delta.tool_calls or [])
    )
    assert json.loads(args) == {"a": 1}


async def test_models_endpoint_via_sdk(fake):
    client = openai.AsyncOpenAI(api_key="test-key", base_url=fake.base_url, max_retries=0)
    models = await client.models.list()
    assert [m.id for m in models.data] == ["fake-model"]
    await client.close()


# --------------------------------------------------------------------------- #
# Dynamic answers and concurrency
# --------------------------------------------------------------------------- #
async def test_responder_answers_concurrent_requests_independently(fake):
    def echo(req):
        return f"echo: {req['messages'][-1]['content']}"

    fake.responder = echo
    llm = make_llm(fake)
    prompts = [f"chat {i}" for i in range(50)]
    replies = await asyncio.gather(*(llm.ainvoke(p) for p in prompts))
    assert [r.content for r in replies] == [f"echo: {p}" for p in prompts]
    assert sorted(r["messages"][-1]["content"] for r in fake.requests) == sorted(prompts)


async def test_responder_spec_shapes_and_queue_precedence(fake):
    specs = iter(
        [
            {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Brasov"}}]},
            text_reply("from Reply object"),
            None,  # -> default_reply
        ]
    )
    fake.responder = lambda req: next(specs)
    fake.reply("queued wins")
    llm = make_llm(fake).bind_tools([get_weather])
    assert (await llm.ainvoke("a")).content == "queued wins"
    msg = await llm.ainvoke("b")
    assert msg.tool_calls[0]["args"] == {"city": "Brasov"}
    assert (await llm.ainvoke("c")).content == "from Reply object"
    assert (await llm.ainvoke("d")).content == "ok"


async def test_blocking_responder_simulates_slow_model_without_sleep(fake):
    gate = threading.Event()
    entered = threading.Event()

    def slow(req):
        entered.set()
        gate.wait(timeout=10)
        return "finally"

    fake.responder = slow
    task = asyncio.create_task(make_llm(fake).ainvoke("slow please"))
    await asyncio.to_thread(entered.wait, 10)
    assert not task.done()
    gate.set()
    assert (await task).content == "finally"


def test_start_stop_idempotent_and_fresh_ports():
    a = FakeOpenAI().start()
    b = FakeOpenAI().start()
    try:
        assert a.port != b.port
        assert a.start() is a
        assert a.base_url == f"http://127.0.0.1:{a.port}/v1"
    finally:
        a.stop()
        a.stop()
        b.stop()
