"""The model's client sends messages and tools past the openai SDK's type walk
(nodes/toolkit/plain_body.py): the body the model receives is the one the stock client sends,
streamed or not, and its answers, tool calls included, read the same."""

from __future__ import annotations

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from nodes.toolkit.plain_body import PlainBodyChatOpenAI
from bench.support.fakes import FakeOpenAI

CONVERSATION = [
    SystemMessage("You are GOAT. Ключ: 金庫 ✓ — 'quoted' \"x\"\n<end>"),
    HumanMessage("Where did I leave the red bike?"),
    AIMessage("", tool_calls=[{"id": "call_1", "name": "search_memory", "args": {"query": "red bike"}}]),
    ToolMessage("2023-05-02: left it at the station", tool_call_id="call_1"),
    HumanMessage("And when?"),
]


@tool
def search_memory(query: str, after: str | None = None) -> str:
    """Search long-term memory."""
    return "nothing"


def client(kind: type[ChatOpenAI], fake: FakeOpenAI, http: httpx.AsyncClient, **kwargs) -> ChatOpenAI:
    # Its own HTTP client, as nodes/services.py gives the model: langchain-openai's default is cached
    # by base URL, and a later test's fake on a port the OS hands out again would meet a connection
    # of this test's closed event loop.
    return kind(model="fake-model", api_key="test-key", base_url=fake.base_url, max_retries=0,
                http_async_client=http, **kwargs)


@pytest.mark.parametrize("streaming", [False, True])
async def test_the_model_receives_the_body_the_stock_client_sends(streaming: bool) -> None:
    with FakeOpenAI() as fake:
        answers = []
        for kind in (ChatOpenAI, PlainBodyChatOpenAI):
            fake.reply_tool_calls([{"name": "search_memory", "arguments": {"query": "bike"}}])
            async with httpx.AsyncClient() as http:
                model = client(kind, fake, http, streaming=streaming, temperature=0.3).bind_tools([search_memory])
                answers.append(await model.ainvoke(CONVERSATION))
        stock, plain = fake.requests
    assert plain == stock
    assert plain["messages"][0]["content"] == CONVERSATION[0].content
    assert plain["tools"][0]["function"]["name"] == "search_memory"
    stock_calls, plain_calls = ([(call["name"], call["args"]) for call in answer.tool_calls] for answer in answers)
    assert plain_calls == stock_calls == [("search_memory", {"query": "bike"})]


async def test_a_text_answer_reads_the_same() -> None:
    with FakeOpenAI() as fake:
        fake.reply("You left it at the station.")
        async with httpx.AsyncClient() as http:
            answer = await client(PlainBodyChatOpenAI, fake, http).ainvoke(CONVERSATION)
    assert answer.content == "You left it at the station."
