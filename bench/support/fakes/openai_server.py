"""A loopback OpenAI-compatible Chat Completions server for tests.

Tests never call a real model provider. They start a :class:`FakeOpenAI`, point
the real client (``langchain_openai.ChatOpenAI`` -> ``openai`` SDK) at its
``base_url`` and script the answers::

    with FakeOpenAI() as fake:
        fake.reply("Hello there")
        fake.reply_tool_calls([{"name": "list_facts", "arguments": {}}])
        fake.fail(status=500, message="boom")
        llm = ChatOpenAI(model="fake-model", api_key="test-key",
                         base_url=fake.base_url, max_retries=0)
        ...
        assert fake.requests[0]["messages"][-1]["content"] == "hi"

Stdlib only: an ``http.server.ThreadingHTTPServer`` on 127.0.0.1 (port 0, so
the OS picks a free port) served from a daemon thread.

Endpoints
---------
``POST /v1/chat/completions``
    Non-streaming: a full ``chat.completion`` object with ``usage``.
    ``"stream": true``: ``text/event-stream`` of ``chat.completion.chunk``
    objects (role chunk, content split in several chunks or tool-call deltas,
    a final chunk with ``finish_reason``, a usage chunk when
    ``stream_options.include_usage`` was requested), then ``data: [DONE]``.
``GET /v1/models``
    ``{"object": "list", "data": [{"id": <model>, ...}]}``.

Every request must carry ``Authorization: Bearer <key>``; without it the fake
answers 401 with the OpenAI error shape (and, when ``api_key=`` was given, a
different key is refused too).

Where answers come from, in order
---------------------------------
1. the scripted queue (``reply`` / ``reply_tool_calls`` / ``fail``), FIFO;
2. ``fake.responder(request_json)`` when set; it may return a ``str`` (text),
   a :class:`Reply` (see :func:`text_reply`, :func:`tool_calls_reply`,
   :func:`error_reply`), a dict ``{"tool_calls": [...], "content": ...}`` or
   ``{"content": ...}``, a list of tool-call dicts, or ``None`` (-> default).
   It runs in the server's handler thread, so it may block (e.g. on a
   ``threading.Event``) to simulate a slow model without sleeping in tests;
3. ``fake.default_reply`` (text, ``"ok"`` by default).
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

__all__ = [
    "FakeOpenAI",
    "Reply",
    "text_reply",
    "tool_calls_reply",
    "error_reply",
]


# --------------------------------------------------------------------------- #
# Reply specs
# --------------------------------------------------------------------------- #
@dataclass
class Reply:
    """One scripted answer.

    ``kind`` is ``"text"``, ``"tool_calls"`` or ``"error"``.
    """

    kind: str
    content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    status: int = 200
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def text_reply(content: str, *, finish_reason: str = "stop") -> Reply:
    """A plain assistant text answer."""
    return Reply(kind="text", content=str(content), finish_reason=finish_reason)


def tool_calls_reply(
    calls: list[dict[str, Any]], *, content: str | None = None
) -> Reply:
    """An assistant message with ``tool_calls``.

    Each call is ``{"name": str, "arguments": dict | str, "id"?: str}``; a dict
    of arguments is JSON-encoded as the real API does. Missing ids are filled
    in by the server (``call_1``, ``call_2``, ... per fake instance).
    """
    norm = []
    for call in calls:
        if "name" not in call:
            raise ValueError(f"tool call without a name: {call!r}")
        args = call.get("arguments", {})
        if not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False)
        norm.append({"id": call.get("id"), "name": call["name"], "arguments": args})
    return Reply(
        kind="tool_calls", content=content, tool_calls=norm, finish_reason="tool_calls"
    )


_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def error_reply(
    status: int = 500,
    message: str = "The server had an error while processing your request.",
    *,
    type: str | None = None,  # noqa: A002 - mirrors the OpenAI field name
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """An HTTP error with the OpenAI error body ``{"error": {...}}``."""
    default_type, default_code = _ERROR_TYPES.get(status, ("server_error", None))
    return Reply(
        kind="error",
        status=int(status),
        error={
            "message": message,
            "type": type or default_type,
            "param": param,
            "code": code if code is not None else default_code,
        },
        headers=dict(headers or {}),
    )


def _coerce(spec: Any) -> Reply | None:
    """Turn whatever a responder returned into a :class:`Reply` (or None)."""
    if spec is None or isinstance(spec, Reply):
        return spec
    if isinstance(spec, str):
        return text_reply(spec)
    if isinstance(spec, list):
        return tool_calls_reply(spec)
    if isinstance(spec, dict):
        if "error" in spec or "status" in spec:
            err = spec.get("error") or {}
            if isinstance(err, str):
                err = {"message": err}
            return error_reply(
                spec.get("status", 500),
                err.get("message", "error"),
                type=err.get("type"),
                code=err.get("code"),
            )
        if spec.get("tool_calls"):
            return tool_calls_reply(spec["tool_calls"], content=spec.get("content"))
        if "content" in spec:
            return text_reply(spec["content"], finish_reason=spec.get("finish_reason", "stop"))
    raise TypeError(f"unsupported reply spec from responder: {spec!r}")


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def _count_tokens(text: str) -> int:
    """Deterministic, rough token count (words + punctuation)."""
    return len(re.findall(r"\w+|[^\w\s]", text or ""))


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for msg in body.get("messages") or []:
        content = msg.get("content")
        if isinstance(content, str):
            total += _count_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += _count_tokens(part["text"])
        for tc in msg.get("tool_calls") or []:
            total += _count_tokens(json.dumps(tc.get("function", {})))
        total += 3  # per-message overhead, as in OpenAI's accounting
    if body.get("tools"):
        total += _count_tokens(json.dumps(body["tools"]))
    return total + 3


def _split_text(text: str) -> list[str]:
    """Split text into stream pieces (several, unless the text is tiny)."""
    if not text:
        return []
    pieces = re.findall(r"\s*\S+", text)
    tail = text[len("".join(pieces)):]
    if tail:
        if pieces:
            pieces[-1] += tail
        else:
            pieces = [tail]
    if len(pieces) == 1 and len(text) > 1:
        mid = len(text) // 2
        pieces = [text[:mid], text[mid:]]
    return pieces


def _split_args(args: str) -> list[str]:
    if len(args) <= 1:
        return [args] if args else []
    size = max(1, -(-len(args) // 3))  # about three pieces
    return [args[i:i + size] for i in range(0, len(args), size)]


# --------------------------------------------------------------------------- #
# HTTP handler
# --------------------------------------------------------------------------- #
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"
    fake: "FakeOpenAI"  # set on the per-instance subclass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep test output quiet

    def setup(self) -> None:
        super().setup()
        self.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake._track(self.connection, add=False)

    # -- plumbing --------------------------------------------------------- #
    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", self.fake._next_request_id())
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error(self, reply: Reply) -> None:
        self._send_json(reply.status, {"error": reply.error}, reply.headers)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization") or ""
        key = auth[len("Bearer "):].strip() if auth.startswith("Bearer ") else ""
        if not key:
            self._send_error(
                error_reply(
                    401,
                    "You didn't provide an API key. You need to provide your API key "
                    "in an Authorization header using Bearer auth "
                    "(i.e. Authorization: Bearer YOUR_KEY).",
                    code=None,
                )
            )
            return False
        if self.fake.api_key is not None and key != self.fake.api_key:
            self._send_error(error_reply(401, "Incorrect API key provided.", code="invalid_api_key"))
            return False
        return True

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/")

    # -- routes ----------------------------------------------------------- #
    def do_GET(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        if self._path() == "/v1/models":
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": self.fake.model,
                            "object": "model",
                            "created": self.fake._created,
                            "owned_by": "fake-openai",
                        }
                    ],
                },
            )
            return
        self._not_found()

    def do_POST(self) -> None:  # noqa: N802
        raw = self._read_body()  # always drain the body, even when refusing
        if not self._authorized():
            return
        if self._path() != "/v1/chat/completions":
            self._not_found()
            return
        try:
            body = json.loads(raw.decode("utf-8") or "null")
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
        except ValueError as exc:
            self._send_error(error_reply(400, f"We could not parse the JSON body of your request: {exc}"))
            return
        self.fake._record(body, {k.lower(): v for k, v in self.headers.items()})
        try:
            reply = self.fake._next_reply(body)
        except Exception as exc:  # a broken responder is a test bug: say so loudly
            self._send_error(error_reply(500, f"FakeOpenAI responder raised: {exc!r}"))
            return
        if reply.kind == "error":
            self._send_error(reply)
        elif body.get("stream"):
            self._stream(body, reply)
        else:
            self._send_json(200, self.fake._completion(body, reply))

    def _not_found(self) -> None:
        self._send_error(error_reply(404, f"Invalid URL ({self.command} {self.path})", code=None))

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", self.fake._next_request_id())
        self.end_headers()

        def write(data: str) -> None:
            payload = data.encode("utf-8")
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            self.wfile.flush()

        try:
            for event in self.fake._chunks(body, reply):
                write(f"data: {json.dumps(event, ensure_ascii=False)}\n\n")
            write("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when many
    # clients (e.g. 50 concurrent chats) connect at once.
    request_queue_size = 1024


# --------------------------------------------------------------------------- #
# The fake server
# --------------------------------------------------------------------------- #
class FakeOpenAI:
    """Loopback OpenAI-compatible Chat Completions server (see module doc)."""

    def __init__(
        self,
        *,
        model: str = "fake-model",
        default_reply: str = "ok",
        api_key: str | None = None,
        responder: Callable[[dict[str, Any]], Any] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.model = model
        self.default_reply = default_reply
        self.api_key = api_key
        self.responder = responder
        self.host = host
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._requests: list[dict[str, Any]] = []
        self._headers: list[dict[str, str]] = []
        self._call_ids = itertools.count(1)
        self._completion_ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        self._created = int(time.time())
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()

    # -- lifecycle -------------------------------------------------------- #
    def start(self) -> "FakeOpenAI":
        if self._server is not None:
            return self
        handler = type("FakeOpenAIHandler", (_Handler,), {"fake": self})
        server = _Server((self.host, 0), handler)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeOpenAI:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for conn in conns:  # drop idle keep-alive connections of the client pool
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- scripting -------------------------------------------------------- #
    def reply(self, text: str, *, finish_reason: str = "stop") -> "FakeOpenAI":
        """Queue a plain text answer."""
        return self.enqueue(text_reply(text, finish_reason=finish_reason))

    def reply_tool_calls(
        self, calls: list[dict[str, Any]], *, content: str | None = None
    ) -> "FakeOpenAI":
        """Queue an assistant message with ``tool_calls`` (finish_reason "tool_calls")."""
        return self.enqueue(tool_calls_reply(calls, content=content))

    def fail(
        self,
        status: int = 500,
        message: str = "The server had an error while processing your request.",
        **kwargs: Any,
    ) -> "FakeOpenAI":
        """Queue an HTTP error with the OpenAI error JSON shape."""
        return self.enqueue(error_reply(status, message, **kwargs))

    def enqueue(self, reply: Reply) -> "FakeOpenAI":
        with self._lock:
            self._queue.append(reply)
        return self

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        with self._lock:
            return len(self._queue)

    # -- recording -------------------------------------------------------- #
    @property
    def requests(self) -> list[dict[str, Any]]:
        """Snapshot of every chat-completions request body received (parsed JSON)."""
        with self._lock:
            return list(self._requests)

    @property
    def request_headers(self) -> list[dict[str, str]]:
        """Headers (lower-cased names) of each recorded request, parallel to :attr:`requests`."""
        with self._lock:
            return list(self._headers)

    @property
    def last_request(self) -> dict[str, Any]:
        with self._lock:
            if not self._requests:
                raise AssertionError("FakeOpenAI received no chat-completions request")
            return self._requests[-1]

    def reset(self) -> None:
        """Forget recorded requests and queued replies."""
        with self._lock:
            self._requests.clear()
            self._headers.clear()
            self._queue.clear()

    # -- internals used by the handler ------------------------------------ #
    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self._requests.append(body)
            self._headers.append(headers)

    def _next_request_id(self) -> str:
        with self._lock:
            return f"req_fake{next(self._request_ids):06d}"

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            reply = self._queue.popleft() if self._queue else None
        if reply is None and self.responder is not None:
            reply = _coerce(self.responder(body))
        if reply is None:
            reply = text_reply(self.default_reply)
        if reply.kind == "tool_calls":
            with self._lock:
                calls = [
                    dict(c, id=c.get("id") or f"call_{next(self._call_ids)}")
                    for c in reply.tool_calls
                ]
            reply = Reply(
                kind="tool_calls",
                content=reply.content,
                tool_calls=calls,
                finish_reason=reply.finish_reason or "tool_calls",
            )
        return reply

    def _envelope(self, body: dict[str, Any], obj: str, cid: str) -> dict[str, Any]:
        return {
            "id": cid,
            "object": obj,
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "service_tier": "default",
            "system_fingerprint": "fp_fakeopenai",
        }

    def _new_completion_id(self) -> str:
        with self._lock:
            return f"chatcmpl-fake{next(self._completion_ids):06d}"

    def _usage(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        completion = _count_tokens(reply.content or "")
        for c in reply.tool_calls:
            completion += _count_tokens(c["name"]) + _count_tokens(c["arguments"])
        prompt = _prompt_tokens(body)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.content,
            "refusal": None,
            "annotations": [],
        }
        if reply.kind == "tool_calls":
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in reply.tool_calls
            ]
        out = self._envelope(body, "chat.completion", self._new_completion_id())
        out["choices"] = [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.finish_reason or "stop",
            }
        ]
        out["usage"] = self._usage(body, reply)
        return out

    def _chunks(self, body: dict[str, Any], reply: Reply):
        cid = self._new_completion_id()
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            out = self._envelope(body, "chat.completion.chunk", cid)
            out["choices"] = [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ]
            if include_usage:
                out["usage"] = None
            return out

        text_pieces = _split_text(reply.content or "")
        first_content = "" if (reply.kind == "text" or text_pieces) else None
        yield chunk({"role": "assistant", "content": first_content, "refusal": None})
        for piece in text_pieces:
            yield chunk({"content": piece})
        for index, call in enumerate(reply.tool_calls):
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": ""},
                        }
                    ]
                }
            )
            for piece in _split_args(call["arguments"]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, reply.finish_reason or "stop")
        if include_usage:
            out = self._envelope(body, "chat.completion.chunk", cid)
            out["choices"] = []
            out["usage"] = self._usage(body, reply)
            yield out
