"""ChatOpenAI whose messages and tools reach the model's request as they are.

Before it sends a request, the openai SDK walks the whole body against its parameter types
(``_transform_recursive``), to rename and reformat fields. A chat completion's messages and
tools need neither, so the walk gives back what it was given: ~8 ms of the event loop's time
a call for a prompt of 40 messages and 8 tools here, at every model call, during which every
other turn of the process waits. Handed to the SDK as ``extra_body``, which it merges into the
body unchanged, they skip the walk; the JSON sent is the same.
"""

from __future__ import annotations

from typing import Any

from langchain_openai import ChatOpenAI

# Fields of a chat completion's body sent as they are.
PLAIN_FIELDS = ("messages", "tools")


class PlainBodyChatOpenAI(ChatOpenAI):
    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        # The Responses API's body, and a structured answer's (the SDK reads its tools to parse it),
        # are left to the SDK.
        if "messages" not in payload or "response_format" in payload:
            return payload
        plain = {field: payload.pop(field) for field in PLAIN_FIELDS if field in payload}
        # ``messages`` is a required argument of the SDK's create(): an empty one, replaced in the body.
        return {**payload, "messages": [], "extra_body": {**(payload.get("extra_body") or {}), **plain}}
