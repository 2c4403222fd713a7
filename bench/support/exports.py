"""Telegram Desktop and ChatGPT exports written as those apps write them, of made-up chats: for
`goat import`'s tests and the import benchmark (no one's private data; any size, streamed to disk),
and zipped as the app's download gives them.

Telegram Desktop (its JSON writer, export_output_json.cpp): ``result.json`` of one chat, or of the
account (``personal_information``, ``chats.list``, ``left_chats.list``); a message has ``id``,
``type`` ("message" or "service"), ``date`` (local time, no zone), ``date_unixtime`` (a string),
``from``/``from_id`` ("user42"), ``text`` (a string, or parts: strings and entities
``{"type", "text"}``), ``text_entities``, and for media, forwards and edits ``photo``, ``file``,
``media_type``, ``forwarded_from``, ``edited``. ChatGPT: ``conversations.json``, a list of
conversations ``{"title", "create_time", "mapping": {id: {"id", "message", "parent",
"children"}}, "current_node", "conversation_id"}``, a message ``{"author": {"role"},
"create_time", "content": {"content_type", "parts"}, "recipient", "metadata"}``.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def telegram_message(number: int, when: float, sender: int, text: str | list[Any] = "",
                     name: str = "", **fields: Any) -> dict[str, Any]:
    """A message as Telegram Desktop writes it, from user ``sender``; ``fields`` add media,
    ``forwarded_from``, ``edited``… (``type="service"`` with ``action`` makes a service message)."""
    parts = [text] if isinstance(text, str) else text
    date = datetime.fromtimestamp(when, timezone.utc).replace(tzinfo=None).isoformat()
    message = {"id": number, "type": "message", "date": date, "date_unixtime": str(int(when))}
    if fields.get("type") == "service":
        message.update(actor=name or f"User {sender}", actor_id=f"user{sender}")
    else:
        message.update({"from": name or f"User {sender}", "from_id": f"user{sender}"})
    message.update(fields)
    message["text"] = text
    message["text_entities"] = [{"type": "plain", "text": part} if isinstance(part, str) else part
                                for part in parts if part]
    return message


@dataclass
class TelegramChat:
    name: str | None
    type: str  # "personal_chat", "bot_chat", "private_group", "private_supergroup", "saved_messages"…
    id: int  # bare, as Telegram Desktop writes it
    messages: Iterable[dict[str, Any]]


def write_telegram(path: Path, chats: Iterable[TelegramChat], owner: int | None = None) -> Path:
    """A Telegram Desktop export: of the one chat of ``chats`` ("Export chat history") when
    ``owner`` is None, else of the account of ``owner`` ("Export Telegram data"). Written a
    message at a time, indented by one space as Telegram Desktop indents."""
    with path.open("w", encoding="utf-8") as out:
        if owner is None:
            [chat] = chats
            _write_chat(out, chat, "")
        else:
            out.write('{\n "about": "Here is the data you requested.",\n "personal_information": ')
            out.write(json.dumps({"user_id": owner, "first_name": "Ana", "last_name": "", "phone_number": "+0 000",
                                  "username": "@ana"}, indent=1).replace("\n", "\n ") + ",\n")
            out.write(' "frequent_contacts": {"about": "", "list": [{"id": 1, "category": "people", "type": "user", '
                      '"name": "Bo", "rating": 0.5}]},\n "chats": {\n  "about": "",\n  "list": [')
            for number, chat in enumerate(chats):
                out.write(",\n   " if number else "\n   ")
                _write_chat(out, chat, "   ")
            out.write('\n  ]\n },\n "left_chats": {\n  "about": "",\n  "list": []\n }\n}\n')
    return path


def _write_chat(out: Any, chat: TelegramChat, indent: str) -> None:
    head = {"name": chat.name, "type": chat.type, "id": chat.id} if chat.name is not None else \
        {"type": chat.type, "id": chat.id}
    out.write("{\n" + "".join(f"{indent} {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},\n"
                              for k, v in head.items()) + f'{indent} "messages": [')
    for number, message in enumerate(chat.messages):
        out.write(",\n" if number else "\n")
        out.write(f"{indent}  " + json.dumps(message, ensure_ascii=False, indent=1).replace("\n", f"\n{indent}  "))
    out.write(f"\n{indent} ]\n{indent}}}")


def chatgpt_node(node_id: str, parent: str | None, role: str | None, text: str | list[Any] = "",
                 when: float | None = None, **fields: Any) -> dict[str, Any]:
    """A node of a conversation's mapping (``role`` None: the root, which holds no message);
    ``fields`` change the message (``content``, ``recipient``, ``metadata``…)."""
    if role is None:
        return {"id": node_id, "message": None, "parent": parent, "children": []}
    message = {"id": node_id, "author": {"role": role, "name": None, "metadata": {}}, "create_time": when,
               "update_time": None, "content": {"content_type": "text", "parts": [text] if isinstance(text, str) else text},
               "status": "finished_successfully", "end_turn": role == "assistant" or None, "weight": 1.0,
               "metadata": {}, "recipient": "all"}
    message.update(fields)
    return {"id": node_id, "message": message, "parent": parent, "children": []}


def chatgpt_conversation(conversation_id: str, title: str, nodes: list[dict[str, Any]],
                         current: str | None = None) -> dict[str, Any]:
    """A conversation of ``nodes`` (each naming its parent; their children are filled in), the
    branch in view ending at ``current`` (default: the last node)."""
    mapping = {node["id"]: node for node in nodes}
    for node in nodes:
        if node["parent"] is not None:
            mapping[node["parent"]]["children"].append(node["id"])
    times = [node["message"]["create_time"] for node in nodes if node["message"] and node["message"]["create_time"]]
    return {"title": title, "create_time": min(times, default=None), "update_time": max(times, default=None),
            "mapping": mapping, "moderation_results": [], "current_node": current or nodes[-1]["id"],
            "plugin_ids": None, "conversation_id": conversation_id, "id": conversation_id}


def chatgpt_chain(conversation_id: str, title: str, turns: Iterable[tuple[str, str, float]]) -> dict[str, Any]:
    """A conversation without branches: a hidden system message, then ``turns`` (user text,
    ChatGPT's reply, the time asked) as ChatGPT keeps them."""
    nodes = [chatgpt_node(f"{conversation_id}-root", None, None),
             chatgpt_node(f"{conversation_id}-system", f"{conversation_id}-root", "system", "",
                          metadata={"is_visually_hidden_from_conversation": True})]
    for number, (asked, answer, when) in enumerate(turns):
        for role, text, at in (("user", asked, when), ("assistant", answer, when + 20)):
            nodes.append(chatgpt_node(f"{conversation_id}-{number}-{role}", nodes[-1]["id"], role, text, at))
    return chatgpt_conversation(conversation_id, title, nodes)


def write_chatgpt(path: Path, conversations: Iterable[dict[str, Any]]) -> Path:
    """ChatGPT's conversations.json, written a conversation at a time."""
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        for number, conversation in enumerate(conversations):
            out.write(", " if number else "")
            out.write(json.dumps(conversation, ensure_ascii=False))
        out.write("]")
    return path


def zipped(document: Path, zip_path: Path, folder: str = "", beside: tuple[str, ...] = ("chat.html",)) -> Path:
    """``document`` in a zip as downloaded, in ``folder`` (a Telegram export's folder zipped whole),
    with empty files named ``beside`` (ChatGPT's zip has chat.html, user.json, images…)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(document, f"{folder}{document.name}")
        for name in beside:
            archive.writestr(f"{folder}{name}", "")
    return zip_path
