"""A loopback Telegram Bot API server for tests: the real python-telegram-bot client talks to it.

Requests go to ``{base_url}/bot{token}/{method}`` as PTB sends them (form fields holding JSON
values, multipart for files) and get ``{"ok": true, "result": …}`` back. The test plays the
users: :meth:`FakeTelegram.send` queues an incoming text message (or any update) that the
bot's long poll (``getUpdates``) picks up, :meth:`FakeTelegram.edit` a user's edit of one;
everything the bot does is recorded in ``calls`` and, for messages, in a per-chat transcript
(:meth:`chat`), edits applied.

Implemented: getMe (``can_read_all_group_messages``: ``reads_all_group_messages``, privacy mode
off by default), getChatMember (``administrators``: per chat, the ids Telegram reports as
administrators; anyone else a member), getUpdates (long poll; ``confirmed``: the last update id
the bot confirmed with its offset, ``queued``: the last one queued), sendMessage, editMessageText, sendChatAction,
sendDocument, setMyCommands, deleteWebhook, setWebhook, getWebhookInfo, close/logOut.
``fail_next(method, status, description, retry_after=None)`` answers the next call of a
method with an error (a 429 with ``retry_after``, or a 400 such as a rejected formatting).
Entities are checked as Telegram does for ``parse_mode="Markdown"``: an unbalanced ``*``
or ``_`` is refused with "can't parse entities". With ``parse_mode="HTML"`` a tag Telegram does
not support, a tag left open, or a ``<`` or ``&`` that is not escaped is refused the same way,
and the transcript holds the text as Telegram shows it (tags out, entities decoded).

Stdlib only, served from a daemon thread on 127.0.0.1 (port 0).
"""

from __future__ import annotations

import email.parser
import email.policy
import html
import itertools
import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

TEXT_FIELDS = {"text", "caption", "parse_mode", "url", "secret_token", "description", "filename"}
BOT = {"id": 700000001, "is_bot": True, "first_name": "GOAT", "username": "goat_test_bot"}
HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "tg-emoji",
             "code", "pre", "blockquote"}
_HTML_TAG = re.compile(r"<(/?)([^\s<>/]*)[^<>]*>")
_HTML_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


class FakeTelegram:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.called_at: list[float] = []  # time.monotonic() of each call, beside it
        self.messages: dict[int, dict[int, dict[str, Any]]] = {}  # chat -> message id -> message
        self.documents: list[dict[str, Any]] = []  # {chat_id, filename, content}
        self.administrators: dict[int, set[int]] = {}  # chat -> its administrators' user ids
        self.reads_all_group_messages = True  # getMe's can_read_all_group_messages: privacy mode off
        self.confirmed = 0  # the last update id the bot confirmed (getUpdates' offset - 1)
        self.queued = 0  # the last update id queued for the bot
        self._updates: deque[dict[str, Any]] = deque()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._failures: dict[str, deque[tuple[int, str, int | None]]] = {}
        self._changed = threading.Condition()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FakeTelegram":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    # ---- the users --------------------------------------------------------------------

    def send(self, chat_id: int, user_id: int, text: str | None = None, *, chat_type: str = "private",
             first_name: str | None = None, **message: Any) -> dict[str, Any]:
        """Queue an incoming message (its sender named ``first_name``, else user<id>); returns it."""
        incoming = {
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type, **({"title": "group"} if chat_type != "private" else {})},
            "from": {"id": user_id, "is_bot": False, "first_name": first_name or f"user{user_id}"},
            **({"text": text} if text is not None else {}), **message,
        }
        if text and text.startswith("/"):
            incoming["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        self.push({"message": incoming})
        return incoming

    def edit(self, message: dict[str, Any], text: str) -> dict[str, Any]:
        """Queue the user's edit of a message they sent (as :meth:`send` returned it); returns the edited message."""
        edited = {**{k: v for k, v in message.items() if k != "entities"}, "text": text, "edit_date": int(time.time())}
        if text.startswith("/"):
            edited["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        self.push({"edited_message": edited})
        return edited

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **update}
        with self._changed:
            self._updates.append(update)
            self.queued = update["update_id"]
            self._changed.notify_all()
        return update

    def fail_next(self, method: str, status: int, description: str, retry_after: int | None = None) -> None:
        self._failures.setdefault(method, deque()).append((status, description, retry_after))

    # ---- what the bot did -----------------------------------------------------------------

    def chat(self, chat_id: int) -> list[str]:
        """The bot's messages in a chat, in order, as they read now (edits applied)."""
        return [m["text"] for _, m in sorted(self.messages.get(chat_id, {}).items()) if "text" in m]

    def wait_for(self, predicate, timeout: float = 60.0) -> None:
        """Block until ``predicate()`` holds after a call of the bot (a condition, not a sleep)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the bot did not get there; its calls: {[m for m, _ in self.calls][-20:]}")
                self._changed.wait(left)

    def methods(self, name: str) -> list[dict[str, Any]]:
        return [params for method, params in self.calls if method == name]

    # ---- the API ------------------------------------------------------------------------------

    def answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._changed:
            if method != "getUpdates":
                self.calls.append((method, params))
                self.called_at.append(time.monotonic())
            failures = self._failures.get(method)
            if failures:
                status, description, retry_after = failures.popleft()
                self._changed.notify_all()
                return status, {"ok": False, "error_code": status, "description": description,
                                **({"parameters": {"retry_after": retry_after}} if retry_after else {})}
            result = getattr(self, f"_{method}", None)
            if result is None:
                return 404, {"ok": False, "error_code": 404, "description": f"Not Found: method {method}"}
            status, body = 200, {"ok": True, "result": result(params)}
            self._changed.notify_all()
            return status, body

    def _getMe(self, params: dict) -> dict:
        return {**BOT, "can_join_groups": True, "can_read_all_group_messages": self.reads_all_group_messages,
                "supports_inline_queries": False}

    def _getChatMember(self, params: dict) -> dict:
        user_id = int(params["user_id"])
        user = {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
        if user_id not in self.administrators.get(int(params["chat_id"]), set()):
            return {"status": "member", "user": user}
        rights = ("can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
                  "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
                  "can_edit_stories", "can_delete_stories")
        return {"status": "administrator", "user": user, "can_be_edited": False, "is_anonymous": False,
                **dict.fromkeys(rights, True)}

    def _getUpdates(self, params: dict) -> list[dict]:
        offset = int(params.get("offset") or 0)
        self.confirmed = max(self.confirmed, offset - 1)
        while self._updates and self._updates[0]["update_id"] < offset:  # confirmed by the offset
            self._updates.popleft()
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 2.0)
        while not self._updates and time.monotonic() < deadline:
            self._changed.wait(deadline - time.monotonic())
        return list(self._updates)[: int(params.get("limit") or 100)]

    def _message(self, chat_id: int, **content: Any) -> dict:
        message = {"message_id": next(self._message_ids), "date": int(time.time()),
                   "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"}, "from": BOT, **content}
        self.messages.setdefault(chat_id, {})[message["message_id"]] = message
        return message

    def _sendMessage(self, params: dict) -> dict:
        return self._message(int(params["chat_id"]), text=_shown(params))

    def _editMessageText(self, params: dict) -> dict:
        message = self.messages[int(params["chat_id"])][int(params["message_id"])]
        message["text"] = _shown(params)
        return message

    def _sendChatAction(self, params: dict) -> bool:
        return True

    def _sendDocument(self, params: dict) -> dict:
        name, content = params["document"]
        self.documents.append({"chat_id": int(params["chat_id"]), "filename": name, "content": content})
        return self._message(int(params["chat_id"]), document={
            "file_id": f"doc{len(self.documents)}", "file_unique_id": f"u{len(self.documents)}", "file_name": name})

    def _setMyCommands(self, params: dict) -> bool:
        return True

    def _deleteWebhook(self, params: dict) -> bool:
        return True

    def _setWebhook(self, params: dict) -> bool:
        return True

    def _getWebhookInfo(self, params: dict) -> dict:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    def _close(self, params: dict) -> bool:
        return True

    _logOut = _close


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A long poll cut off by the client closing (the bot stopping) is no error."""


def _shown(params: dict) -> str:
    """The message's text as Telegram shows it, its formatting checked as Telegram checks it."""
    text = params["text"]
    if params.get("parse_mode") in ("Markdown", "MarkdownV2"):
        if text.count("*") % 2 or text.count("_") % 2:
            raise _Refused("Bad Request: can't parse entities: Can't find end of the entity")
    if params.get("parse_mode") == "HTML":
        return _html_shown(text)
    return text


def _html_shown(text: str) -> str:
    shown, open_tags, at = [], [], 0
    for tag in [*_HTML_TAG.finditer(text), None]:
        plain = text[at:tag.start() if tag else len(text)]
        if "<" in plain or _HTML_ENTITY.sub("", plain).count("&"):
            raise _Refused("Bad Request: can't parse entities: unescaped '<' or '&' in the text")
        shown.append(html.unescape(plain))
        if tag is None:
            break
        closing, name = tag.group(1), tag.group(2).lower()
        if name not in HTML_TAGS:
            raise _Refused(f'Bad Request: can\'t parse entities: Unsupported start tag "{name}"')
        if closing and (not open_tags or open_tags.pop() != name):
            raise _Refused(f'Bad Request: can\'t parse entities: Unmatched end tag "{name}"')
        if not closing:
            open_tags.append(name)
        at = tag.end()
    if open_tags:
        raise _Refused(f"Bad Request: can't parse entities: Can't find end tag corresponding to start tag "
                       f"{open_tags[-1]}")
    return "".join(shown)


class _Refused(Exception):
    pass


def _handler(fake: FakeTelegram) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_POST(self) -> None:  # noqa: N802 — the stdlib's name
            self._serve()

        def do_GET(self) -> None:  # noqa: N802
            self._serve()

        def _serve(self) -> None:
            prefix = f"/bot{fake.token}/"
            if not self.path.startswith(prefix):
                return self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            method = self.path[len(prefix):].split("?")[0]
            try:
                status, body = fake.answer(method, self._params())
            except _Refused as exc:
                status, body = 400, {"ok": False, "error_code": 400, "description": str(exc)}
            self._reply(status, body)

        def _params(self) -> dict[str, Any]:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = self.headers.get("Content-Type", "")
            if kind.startswith("multipart/form-data"):
                parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    b"Content-Type: " + kind.encode() + b"\r\n\r\n" + raw)
                fields = {}
                for part in parsed.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    filename = part.get_filename()
                    payload = part.get_payload(decode=True)
                    fields[name] = (filename, payload) if filename else payload.decode()
            else:
                fields = dict(parse_qsl(raw.decode()))
            return {k: v if k in TEXT_FIELDS or not isinstance(v, str) else _json(v) for k, v in fields.items()}

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _json(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
