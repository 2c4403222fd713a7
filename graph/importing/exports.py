"""`goat import` of the exports people can download: Telegram Desktop's and ChatGPT's.

Telegram Desktop ("Export chat history", or Settings → Advanced → "Export Telegram data", as JSON)
writes ``result.json``: one chat ``{"name", "type", "id", "messages": [...]}``, or the whole
account ``{"personal_information": {"user_id"}, "chats": {"list": [chat...]}, "left_chats": ...}``.
ChatGPT (Settings → Data controls → Export) mails a zip whose ``conversations.json`` is a list of
conversations, each a tree of messages under ``mapping`` whose branch in view ends at
``current_node``. Either may be given as the zip it came in.

Both are single JSON documents, of gigabytes for years of chats: they are parsed as a stream
(ijson, in C), a message (Telegram) or a conversation (ChatGPT) held at a time, and read as
the same messages a JSON Lines transcript gives, so :mod:`graph.importing.importer` checks, pairs,
numbers and imports them as it does its lines: twice read, resumable, nothing written twice.
Which kind a file is, and how its document is opened: :mod:`graph.importing.export_files`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any

import ijson

from graph.importing.export_files import DOCUMENTS, ExportError, ExportFile, find_export
from graph.importing.importer import Transcript, checked, file_reads, parse_timestamp
from graph.importing.transcript_records import Omitted, Read, Refusal, TranscriptMessage
from graph.json_limits import PARSER, JsonBeyondLimits, json_events
from memory.turns import clean_text, message_problem, usable_name
from nodes.state import check_ids

# Where an export's chats are: one chat's export is the chat; an account's lists them twice.
_CHATS = ((), ("chats", "list", "item"), ("left_chats", "list", "item"))
_CHAT_FIELDS = {(*base, name): name for base in _CHATS for name in ("name", "type", "id")}
_MESSAGE_LISTS = {(*base, "messages") for base in _CHATS}
_MESSAGES = {(*base, "messages", "item") for base in _CHATS}
# The Bot API's chat ids: a basic group's is its id negated, a supergroup's or channel's
# -(10^12 + id); a private chat's is the person's user id (for a bot, the one talking to it).
_PRIVATE = {"personal_chat", "bot_chat"}  # a chat of the account's with one other, a person or a bot
_GROUPS = {"private_group"}
_CHANNELS = {"private_supergroup", "public_supergroup", "private_channel", "public_channel"}
_CHANNEL_BASE = 1_000_000_000_000
_MEDIA = {"sticker": "sticker", "video_message": "video message", "voice_message": "voice message",
          "animation": "GIF", "video_file": "video", "audio_file": "audio"}
_SPOKEN = ("user", "assistant")
_PYTHON_PARSER = ijson.get_backend("python")


def read_export(path: Path, format: str | None = None, *, me: str | None = None, into: str | None = None,
                skip_invalid: bool = False, stopped: Callable[[], bool] | None = None) -> Transcript:
    """Check every message of a transcript or export (:func:`graph.importing.importer.checked`).

    Args:
        format: "jsonl", "telegram" or "chatgpt"; None: told by the content
            (:func:`graph.importing.export_files.find_export`).
        me: whose messages are the user's: a Telegram user id (default: the exporting account); for
            ChatGPT, the user id its messages are kept under (default: the chat's id).
        into: one chat to import every message into (default: each chat or conversation its own).
        skip_invalid, stopped: as :func:`graph.importing.importer.checked` takes them.
    Returns:
        The checked transcript, to import with :func:`graph.importing.importer.import_turns`.
    Raises:
        ExportError: the file cannot be read as that format at all.
        TranscriptError: messages cannot be imported (without ``skip_invalid``).
    """
    for option, value in (("--me", me), ("--into", into)):
        if value is not None and not value.strip():
            raise ExportError(f"{option} is empty")
    export = find_export(path, format)
    if export.format == "telegram" and me is not None and not _telegram_id(me).isdigit():
        raise ExportError(f"--me {me!r:.40} is not a Telegram user id (a number: the 42 of a from_id \"user42\")")
    if export.format == "jsonl":
        if me is not None:
            raise ExportError("--me is for Telegram and ChatGPT exports: a JSON Lines transcript names "
                              "each message's role and user_id")
        reads, unit = file_reads(path), "line"
    elif export.format == "telegram":
        account = telegram_account(export, _telegram_id(me) if me else None)
        reads, unit = telegram_reads(export, account), "message"
    else:
        reads, unit = chatgpt_reads(export, me), "message"
    transcript = checked(_into(reads, into) if into else reads, skip_invalid, stopped, unit)
    if export.format == "telegram" and account.owner is not None:
        # The export's account imports it: its chats are to be theirs, not every member's whose
        # lines it holds (a chat of two kept under the other's id is the other's chat with the bot).
        transcript = replace(transcript, people={chat_id: frozenset({account.owner}) for chat_id in transcript.people})
    if export.format != "jsonl" and not transcript.read:
        name = {"telegram": "Telegram Desktop's", "chatgpt": "ChatGPT's"}[export.format]
        raise ExportError(f"it holds no messages: is it {name} {DOCUMENTS[export.format]} (or the zip it came in)?")
    return transcript


def _into(reads: Callable[[], Iterator[Read]], chat_id: str) -> Callable[[], Iterator[Read]]:
    """``reads`` with every message in the chat ``chat_id``."""
    check_ids(chat_id=chat_id)

    def moved() -> Iterator[Read]:
        with closing(reads()) as source:
            for read in source:
                yield replace(read, chat_id=chat_id) if isinstance(read, TranscriptMessage) else read

    return moved


# ---- Telegram Desktop -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TelegramAccount:
    """Who an export's people are, as far as it says: every sender is a person of their own but
    the bots, whose lines are the assistant's."""

    owner: str | None  # the exporting account: a chat with a bot is kept as theirs
    bots: frozenset[str]  # the peers of the export's chats with bots, in a group as anywhere


def telegram_account(export: ExportFile, me: str | None) -> TelegramAccount:
    """The account (``me``, else: an account's export gives it; a chat with a bot or a person's is
    the sender who is not the other; Saved Messages' the chat's own) and its bots. Telegram Desktop marks no
    sender as a bot: a bot is known as the other side of a chat with one, so an account's export
    is read to its end for them (its chats' heads; a one-chat export is read as far as its first
    messages), past a lone surrogate as :func:`telegram_reads` reads it."""
    try:
        return _account(export, me, PARSER)
    except UnicodeDecodeError:
        return _account(export, me, _PYTHON_PARSER)


def _account(export: ExportFile, me: str | None, backend: Any) -> TelegramAccount:
    owner, chat, bots = me, {}, set()
    with export.open() as file:
        try:
            for path, event, value in json_events(file, backend=backend):
                if path in _CHATS and event == "start_map":
                    chat = {}
                elif path in _CHAT_FIELDS:
                    chat[_CHAT_FIELDS[path]] = value
                    if chat.get("type") == "bot_chat" and "id" in chat:
                        bots.add(str(chat["id"]))
                elif path == ("personal_information", "user_id"):
                    owner = owner or str(value)
                elif path == ("messages",):  # a one-chat export's messages begin, or end
                    if chat.get("type") == "saved_messages":
                        owner = owner or str(chat.get("id"))
                    if owner or chat.get("type") not in _PRIVATE or event == "end_array":
                        break
                elif path == ("messages", "item", "from_id") and (sender := _sender_id(value)) != str(chat.get("id")):
                    owner = sender
                    break
        except UnicodeDecodeError:
            if backend is PARSER:
                raise
        except (ijson.JSONError, JsonBeyondLimits, ValueError, zipfile.BadZipFile, EOFError):
            pass  # a file cut short, or a message that is not one: reading the messages names where, and goes on
    return TelegramAccount(owner, frozenset(bots))


def _telegram_id(me: str) -> str:
    """A user id given as Telegram Desktop writes it ("user42") or as a number ("42")."""
    return me.strip().removeprefix("user")


def _sender_id(from_id: object) -> str:
    """A sender as the Bot API numbers it: a user by their id, a group or channel (posting as
    itself) by its chat id. Exports before 2021 gave a user's id as a number."""
    if isinstance(from_id, int) and not isinstance(from_id, bool):
        return str(from_id)
    if not isinstance(from_id, str):
        raise ValueError(f"from_id must be a string like \"user42\", not {from_id!r:.40}")
    for kind, bot_api in (("user", lambda n: n), ("chat", lambda n: -n), ("channel", lambda n: -_CHANNEL_BASE - n)):
        if from_id.startswith(kind) and from_id[len(kind):].isdigit():
            return str(bot_api(int(from_id[len(kind):])))
    raise ValueError(f"from_id {from_id!r:.40} is not a user, chat or channel")


def telegram_chat_id(kind: object, bare: object, owner: str | None) -> str:
    """The chat's id as the Bot API (and so `goat bot`) gives it, from the export's type and id:
    a private chat with a bot is the chat of the person talking to it, the account's owner."""
    if isinstance(bare, bool) or not isinstance(bare, int):
        raise ValueError(f"the chat's id must be a number, not {bare!r:.40}")
    if kind == "bot_chat":
        if owner is None:
            raise ValueError("whose chat with the bot this is the export does not say: give your Telegram user id "
                             "with --me ID (the number in the \"from_id\": \"user…\" of your messages)")
        return owner
    return str(-bare if kind in _GROUPS else -_CHANNEL_BASE - bare if kind in _CHANNELS else bare)


def telegram_reads(export: ExportFile, account: TelegramAccount) -> Callable[[], Iterator[Read]]:
    """The messages of a Telegram Desktop export, chat after chat, every sender a person (a user)
    of their own but the account's bots, whose lines are the assistant's; each message built
    alone from the parser's events.

    yajl, ijson's parser in C, cannot hand back a lone surrogate (a "\\udc80" escape): it stops
    there. The file is then read again by ijson's parser in Python (ten times slower), which
    hands it back, past the messages read: that message is refused as one of JSON Lines is.
    """

    def reads() -> Iterator[Read]:
        read = 0
        try:
            for message in _telegram_messages(export, account, PARSER):
                yield message
                read += 1
        except _LoneSurrogate:
            yield from islice(_telegram_messages(export, account, _PYTHON_PARSER), read, None)

    return reads


class _LoneSurrogate(Exception):
    """yajl met a lone surrogate escape, which it cannot hand back."""


def _telegram_messages(export: ExportFile, account: TelegramAccount, backend: Any) -> Iterator[Read]:
    chat: dict[str, Any] = {}
    where = "the start of the file"
    with export.open() as file:
        try:
            for path, event, value in json_events(file, _MESSAGES, "a message", backend):
                if event == "value":
                    if isinstance(value, dict):
                        read = telegram_message(chat, value, account.bots)
                        where = f"{_chat_where(chat)}, message {value.get('id')}"
                        yield read
                elif path in _CHATS and event == "start_map":
                    chat = {}
                elif path in _CHAT_FIELDS:
                    chat[_CHAT_FIELDS[path]] = value
                elif path in _MESSAGE_LISTS and event == "start_array":
                    try:
                        chat["chat_id"] = telegram_chat_id(chat.get("type"), chat.get("id"), account.owner)
                    except ValueError as exc:  # each of its messages is refused, saying why
                        chat["problem"] = str(exc)
                    where = f"{_chat_where(chat)}, before its first message"
        except UnicodeDecodeError as exc:  # raw bytes that are not UTF-8 are yajl's JSONError
            if backend is PARSER:
                raise _LoneSurrogate() from exc
            yield _broken(where, exc)
        except (ijson.JSONError, JsonBeyondLimits, zipfile.BadZipFile, EOFError) as exc:
            yield _broken(where, exc)


def _chat_where(chat: dict[str, Any]) -> str:
    return f"chat {chat.get('chat_id', chat.get('id'))} ({chat.get('name') or chat.get('type')})"


def _broken(where: str, exc: Exception) -> Refusal:
    """Why nothing after ``where`` can be read: the document breaks off or is not JSON there."""
    return Refusal(f"after {where}", f"the file cannot be read past this point ({_said(exc)}): nothing after it is "
                                     f"imported")


def _said(exc: Exception) -> str:
    """What the parser says went wrong, in a line (yajl's message adds a drawing of the spot)."""
    raw = exc.args[0] if exc.args else ""
    text = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).strip()
    if "premature EOF" in text:
        return "the file ends before its JSON does: cut short while downloading or copying?"
    return text.splitlines()[0] if text else type(exc).__name__


def telegram_message(chat: dict[str, Any], record: dict[str, Any], bots: frozenset[str]) -> Read:
    """A message of an exported chat as the user saw it: its text parts joined, a placeholder for
    its media (before the caption), [forwarded from …] when forwarded; an edited message as
    edited (Telegram keeps only that text), at the time it was sent, known by its chat and id
    (``ref``: a re-import of it edited since rewrites it), under its sender's id and name (a
    name that cannot be kept is left out, not the message). Service messages (joins, pins,
    calls) are left out."""
    where = f"{_chat_where(chat)}, message {record.get('id')}"
    try:
        if "problem" in chat:
            raise ValueError(chat["problem"])
        if record.get("type") != "message":
            return Omitted(f"{record.get('type', 'untyped')} message")
        shown = [part for part in (_media(record), _text(record.get("text", ""))) if part and part.strip()]
        if not shown:
            return Omitted("empty message")
        if "forwarded_from" in record:
            shown.insert(0, f"[forwarded from {record['forwarded_from']}]" if record["forwarded_from"] else "[forwarded]")
        content = " ".join(shown)
        sender = _sender_id(record["from_id"]) if record.get("from_id") is not None else chat["chat_id"]
        check_ids(chat_id=chat["chat_id"], user_id=sender)
        if problem := message_problem(content):
            raise ValueError(f"its text {problem}")
        when = record["date_unixtime"] if "date_unixtime" in record else record.get("date")
        if when is None:
            raise ValueError("date is missing")
        name = usable_name(record["from"]) if isinstance(record.get("from"), str) else None
        return TranscriptMessage(chat["chat_id"], sender, "assistant" if sender in bots else "user",
                                 clean_text(content), parse_timestamp(when),
                                 ref=f"telegram:{chat['chat_id']}/{record.get('id')}", name=name)
    except (ValueError, TypeError) as exc:
        return Refusal(where, str(exc))


def _text(text: object) -> str:
    """Telegram's text: a string, or its parts (strings, and entities such as links and bold
    text as {"type", "text"}) joined as they were shown."""
    if isinstance(text, str):
        return text
    if not isinstance(text, list):
        raise ValueError(f"text must be a string or a list of parts, not {text!r:.40}")
    return "".join(part if isinstance(part, str) else str(part.get("text", "")) if isinstance(part, dict) else ""
                   for part in text)


def _media(record: dict[str, Any]) -> str | None:
    """A short placeholder for what a message carries besides text."""
    if "photo" in record:
        return "[photo]"
    if kind := record.get("media_type"):
        name = _MEDIA.get(kind, kind.replace("_", " "))
        detail = {"sticker": record.get("sticker_emoji"),
                  "audio_file": " – ".join(filter(None, (record.get("performer"), record.get("title"))))}.get(kind)
        return f"[{name}: {detail}]" if detail else f"[{name}]"
    if "file" in record:
        name = record.get("file_name") or PurePosixPath(str(record["file"])).name
        return f"[file: {name}]" if name and not str(record["file"]).startswith("(") else "[file]"
    if contact := record.get("contact_information"):
        return f"[contact: {' '.join(filter(None, (contact.get('first_name'), contact.get('last_name'))))}]"
    if place := record.get("place_name"):
        return f"[place: {', '.join(filter(None, (place, record.get('address'))))}]"
    if "location_information" in record:
        return "[location]"
    if poll := record.get("poll"):
        return f"[poll: {poll.get('question', '')}]"
    if game := record.get("game_title"):
        return f"[game: {game}]"
    if invoice := record.get("invoice_information"):
        return f"[invoice: {invoice.get('title', '')}]"
    return None


# ---- ChatGPT --------------------------------------------------------------------------------------------


def chatgpt_reads(export: ExportFile, me: str | None) -> Callable[[], Iterator[Read]]:
    """The messages of a ChatGPT export, conversation after conversation, each its own chat (its
    id); a conversation held whole while read (its tree is walked from ``current_node``)."""

    def reads() -> Iterator[Read]:
        where = "the start of the file"
        with export.open() as file:
            try:
                conversations = (value for _, event, value in json_events(file, {("item",)}, "a conversation")
                                 if event == "value")
                for number, conversation in enumerate(conversations, start=1):
                    where = f"conversation {number}"
                    if isinstance(conversation, dict):
                        if isinstance(title := conversation.get("title"), str) and title.strip():
                            where = f"conversation {number} ({title[:60]!r})"
                    yield from chatgpt_conversation(where, conversation, me)
            except (ijson.JSONError, JsonBeyondLimits, UnicodeDecodeError, zipfile.BadZipFile, EOFError) as exc:
                yield _broken(where, exc)

    return reads


def chatgpt_conversation(where: str, conversation: object, me: str | None) -> Iterator[Read]:
    """The messages on a conversation's current branch, from its first: the path from
    ``current_node`` up to the root, reversed (a regenerated answer or an edited question left
    the other branches behind)."""
    if not isinstance(conversation, dict):
        yield Refusal(where, "expected a JSON object")
        return
    chat_id = conversation.get("conversation_id") or conversation.get("id")
    mapping, node_id = conversation.get("mapping"), conversation.get("current_node")
    if not isinstance(chat_id, str) or not chat_id.strip():
        yield Refusal(where, "it has no conversation_id")
        return
    if not isinstance(mapping, dict) or not isinstance(node_id, str) or node_id not in mapping:
        yield Refusal(where, "its current_node is not a node of its mapping")
        return
    branch: list[dict[str, Any]] = []
    while node_id is not None:
        node = mapping.get(node_id)
        if not isinstance(node, dict) or len(branch) == len(mapping):
            yield Refusal(where, f"the path from current_node up breaks at node {node_id!r:.60}")
            return
        branch.append(node)
        node_id = node.get("parent")
    started = conversation.get("create_time")
    for node in reversed(branch):
        if (message := node.get("message")) is not None:
            yield chatgpt_message(f"{where}, message {node.get('id')}", message, chat_id, me or chat_id, started)


def chatgpt_message(where: str, message: object, chat_id: str, user_id: str, started: object) -> Read:
    """A user's or ChatGPT's message; the system's, tools' (and ChatGPT's calls to them) and hidden
    context are left out. Its time is its create_time, else its conversation's."""
    try:
        if not isinstance(message, dict):
            raise ValueError("expected a JSON object")
        role = (message.get("author") or {}).get("role")
        content = message.get("content") or {}
        if role not in _SPOKEN:
            return Omitted("system or tool message")
        if (message.get("metadata") or {}).get("is_visually_hidden_from_conversation"):
            return Omitted("hidden message")  # e.g. the custom instructions, sent as the user's
        if message.get("recipient", "all") != "all" or content.get("content_type") not in ("text", "multimodal_text"):
            return Omitted("system or tool message")  # ChatGPT calling a tool, its code, its reasoning
        text = "\n".join(filter(None, map(_part, content.get("parts") or [])))
        if not text.strip():
            return Omitted("empty message")
        check_ids(chat_id=chat_id, user_id=user_id)
        if problem := message_problem(text):
            raise ValueError(f"its text {problem}")
        when = message.get("create_time") if message.get("create_time") is not None else started
        if when is None:
            raise ValueError("it has no create_time, nor has its conversation")
        return TranscriptMessage(chat_id, user_id, role, clean_text(text), parse_timestamp(when))
    except (ValueError, TypeError, AttributeError) as exc:
        return Refusal(where, str(exc))


def _part(part: object) -> str:
    """A part of a message: its text, or a placeholder for an image or a file."""
    if isinstance(part, str):
        return part
    if isinstance(part, dict):
        kind = str(part.get("content_type", "attachment"))
        if isinstance(part.get("text"), str):  # an audio message's transcription
            return part["text"]
        return "[image]" if "image" in kind else f"[{kind.removesuffix('_asset_pointer').replace('_', ' ')}]"
    return ""
