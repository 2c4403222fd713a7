"""`goat import` of a Telegram Desktop or ChatGPT export, written to those apps' formats by
bench/support/exports.py: every kind of message, the ids Telegram's Bot API gives, the branch in
view of a ChatGPT conversation, zips, what cannot be read. Real Redis, Chroma and encoder where
anything is imported; the model and Telegram's Bot API are loopback fakes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_cli import goat, goat_env, ok
from test_telegram import ALICE, TOKEN, bot_settings, echo, running, turn_done, until

from bench.support.fakes import FakeOpenAI
from bench.support.fakes.telegram_server import FakeTelegram
from bench.support.exports import (TelegramChat, chatgpt_chain, chatgpt_conversation, chatgpt_node, telegram_message,
                                   write_chatgpt, write_telegram, zipped)
from graph.importing.export_files import ExportError, find_export
from graph.importing.exports import read_export
from graph.importing.importer import Transcript, TranscriptError, TranscriptMessage, import_turns

ANA, BO, CARLA, BOT = 111_001, 222_002, 333_003, 444_004
T0 = 1_700_000_000


def read(transcript: Transcript) -> list[tuple[str, str, str, str, float]]:
    """The transcript's messages: (chat, role, user, text, time)."""
    return [(m.chat_id, m.role, m.user_id, m.content, m.timestamp)
            for m in transcript.reads() if isinstance(m, TranscriptMessage)]


# Ana's chat with Bo: one message of every kind Telegram Desktop writes.
EVERY_KIND = [
    telegram_message(1, T0, ANA, "Bo, the boiler code is 7-3-9-1.", name="Ana"),
    telegram_message(2, T0 + 60, BO, ["Saved it, see ", {"type": "text_link", "text": "the manual",
                                                          "href": "https://example.org/boiler"},
                                      " ", {"type": "bold", "text": "page 4"}, "."], name="Bo"),
    telegram_message(3, T0 + 120, ANA, "", type="service", action="pin_message", message_id=1),
    telegram_message(4, T0 + 180, ANA, "The boiler room", photo="photos/photo_1@14-11-2023_22-16-20.jpg",
                     width=800, height=600),
    telegram_message(5, T0 + 240, BO, "", file="voice_messages/audio_1.ogg", media_type="voice_message",
                     mime_type="audio/ogg", duration_seconds=4),
    telegram_message(6, T0 + 300, ANA, "Plumber says Tuesday", forwarded_from="Lisbon Plumbing"),
    telegram_message(7, T0 + 360, BO, "", file="stickers/sticker.webp", media_type="sticker", sticker_emoji="👍"),
    telegram_message(8, T0 + 420, ANA, "Tuesday at 9, not 10", edited="2023-11-14T22:50:00",
                     edited_unixtime=str(T0 + 1800)),
    telegram_message(9, T0 + 480, BO, "(the invoice)", file="files/invoice.pdf", mime_type="application/pdf"),
    {"id": 10, "type": "unsupported"},
    telegram_message(11, T0 + 600, ANA, "", type="service", action="phone_call", duration_seconds=60),
]
SEEN = [  # EVERY_KIND as Ana saw it: two people, each a user of their own
    ("user", str(ANA), "Bo, the boiler code is 7-3-9-1.", T0),
    ("user", str(BO), "Saved it, see the manual page 4.", T0 + 60),
    ("user", str(ANA), "[photo] The boiler room", T0 + 180),
    ("user", str(BO), "[voice message]", T0 + 240),
    ("user", str(ANA), "[forwarded from Lisbon Plumbing] Plumber says Tuesday", T0 + 300),
    ("user", str(BO), "[sticker: 👍]", T0 + 360),
    ("user", str(ANA), "Tuesday at 9, not 10", T0 + 420),  # edited: once, as edited, when sent
    ("user", str(BO), "[file: invoice.pdf] (the invoice)", T0 + 480),
]


def bo_chat(tmp_path: Path, messages: list[dict[str, Any]] = EVERY_KIND) -> Path:
    return write_telegram(tmp_path / "result.json", [TelegramChat("Bo", "personal_chat", BO, messages)])


# ---- Telegram -------------------------------------------------------------------------------------------


def names(transcript: Transcript) -> list[tuple[str, str, str | None]]:
    """The transcript's speakers: (role, user, name)."""
    return [(m.role, m.user_id, m.name) for m in transcript.reads() if isinstance(m, TranscriptMessage)]


def test_a_telegram_chat_reads_as_its_user_saw_it_service_messages_counted_and_left_out(tmp_path):
    transcript = read_export(bo_chat(tmp_path))

    assert read(transcript) == [(str(BO), *message) for message in SEEN]  # a private chat: the other person's id
    assert transcript.omitted == {"service message": 2, "unsupported message": 1}
    assert (transcript.messages, transcript.turns) == (8, 8)  # one chat of two people: no one's line answers
    assert names(transcript)[:2] == [("user", str(ANA), "Ana"), ("user", str(BO), "Bo")]  # each sender's "from"


def test_an_accounts_export_keeps_each_chat_under_the_id_the_bot_api_gives_it(tmp_path):
    """Telegram Desktop writes a chat's bare id; `goat bot` sees the Bot API's: a basic group's
    negated, a supergroup's -100…, a chat with a bot as the person talking to it."""
    said = [telegram_message(1, T0, ANA, "Hello all", name="Ana"), telegram_message(2, T0 + 5, BO, "Hi Ana")]
    asked = [said[0], telegram_message(3, T0 + 9, BOT, "Hello, Ana.", name="Helper")]
    chats = [TelegramChat("Bo", "personal_chat", BO, said), TelegramChat("Family", "private_group", 4_004, said + asked),
             TelegramChat("Club", "private_supergroup", 1_500_000_005, said),
             TelegramChat(None, "saved_messages", ANA, said[:1]), TelegramChat("Helper", "bot_chat", BOT, asked)]
    path = write_telegram(tmp_path / "result.json", chats, owner=ANA)

    transcript = read_export(path)

    assert find_export(path).format == "telegram"
    people, bot = [("user", str(ANA)), ("user", str(BO))], [("user", str(ANA)), ("assistant", str(BOT))]
    assert [(chat, role, user) for chat, role, user, *_ in read(transcript)] == [
        *[(str(BO), *person) for person in people], *[("-4004", *person) for person in people + bot],
        *[("-1001500000005", *person) for person in people], (str(ANA), "user", str(ANA)),
        *[(str(ANA), *person) for person in bot]]  # the bot's chat: Ana's; the bot's lines, in a group too


def test_an_accounts_export_read_to_its_end_for_its_bots_refuses_only_the_message_it_cannot_read(tmp_path):
    said = [telegram_message(1, T0, ANA, "Hello all"), telegram_message(2, T0 + 5, BOT, "Message 2 of the bot")]
    path = write_telegram(tmp_path / "result.json", [TelegramChat("Family", "private_group", 4_004, said),
                                                     TelegramChat("Helper", "bot_chat", BOT, said)], owner=ANA)
    path.write_text(path.read_text("utf-8").replace("Hello all", "Hello \\udc80 all", 1), "utf-8")

    with pytest.raises(TranscriptError, match="^chat -4004 \\(Family\\), message 1: its text holds text that is not"):
        read_export(path)
    assert [(chat, role) for chat, role, *_ in read(read_export(path, skip_invalid=True))] == [
        ("-4004", "assistant"), (str(ANA), "user"), (str(ANA), "assistant")]  # the bot known past the broken line


def test_a_groups_export_needs_no_me_and_me_says_whose_chat_with_a_bot_is(tmp_path):
    group = write_telegram(tmp_path / "group.json", [TelegramChat("Family", "private_group", 4_004, [
        telegram_message(1, T0, ANA, "Dinner at 8?", name="Ana"), telegram_message(2, T0 + 5, CARLA, "Yes!", name="Carla")])])
    greeting = write_telegram(tmp_path / "bot.json", [TelegramChat("Helper", "bot_chat", BOT, [
        telegram_message(1, T0, BOT, "Welcome! Send me anything.", name="Helper")])])

    assert names(read_export(group)) == [("user", str(ANA), "Ana"), ("user", str(CARLA), "Carla")]
    assert names(read_export(group, me=str(CARLA))) == names(read_export(group))  # no one's lines are anyone else's
    with pytest.raises(TranscriptError, match=r"whose chat with the bot this is the export does not say: give your "
                                              r"Telegram user id with --me ID"):
        read_export(greeting)  # only the bot spoke in it
    as_carla = read_export(greeting, me=f"user{CARLA}")  # as Telegram Desktop writes it, or the number alone
    assert [(chat, role, user) for chat, role, user, *_ in read(as_carla)] == [(str(CARLA), "assistant", str(BOT))]
    with pytest.raises(ExportError, match="not a Telegram user id"):
        read_export(group, me="carla")


def test_a_message_that_cannot_be_read_is_named_and_skip_invalid_goes_on_past_it(tmp_path):
    broken = [*EVERY_KIND[:2], {**EVERY_KIND[3], "date_unixtime": "soon", "date": "later"}, *EVERY_KIND[4:]]
    path = bo_chat(tmp_path, broken)

    with pytest.raises(TranscriptError) as refused:
        read_export(path)
    skipping = read_export(path, skip_invalid=True)

    assert str(refused.value).startswith(f"chat {BO} (Bo), message 4: timestamp 'soon' is neither ISO-8601")
    assert [str(refusal).split(": timestamp")[0] for refusal in skipping.skipped] == [f"chat {BO} (Bo), message 4"]
    assert [text for *_, text, _ in read(skipping)] == [text for _, _, text, _ in SEEN if text != SEEN[2][2]]


def test_an_export_that_breaks_off_says_after_which_message_and_the_rest_can_be_imported(tmp_path):
    path = bo_chat(tmp_path)
    text = path.read_text("utf-8")
    path.write_text(text[:text.index('"Plumber says Tuesday"')], "utf-8")  # a download cut short

    with pytest.raises(TranscriptError, match=rf"^after chat {BO} \(Bo\), message 5: the file cannot be read past "
                                              r"this point \(.+\): nothing after it is imported$"):
        read_export(path)
    assert [text for *_, text, _ in read(read_export(path, skip_invalid=True))] == [m[2] for m in SEEN[:4]]

    path.write_bytes(text.replace("Plumber says", "Plombier d\u00e9j\u00e0").encode("utf-8").replace(
        "\u00e9".encode("utf-8"), b"\xe9"))  # Latin-1, not UTF-8
    with pytest.raises(TranscriptError, match=rf"^after chat {BO} \(Bo\), message 5: the file cannot be read past "
                                              r"this point \(lexical error: invalid bytes in UTF8 string\.\)"):
        read_export(path)


# ---- ChatGPT --------------------------------------------------------------------------------------------


def branched() -> dict[str, Any]:
    """A conversation whose question was edited once and whose answer was regenerated once: the
    branch in view asks about Porto and has the second answer; a tool ran on the way."""
    nodes = [
        chatgpt_node("root", None, None),
        chatgpt_node("system", "root", "system", "", metadata={"is_visually_hidden_from_conversation": True}),
        chatgpt_node("context", "system", "user", "",
                     content={"content_type": "user_editable_context", "user_profile": "I live in Lisbon."},
                     metadata={"is_visually_hidden_from_conversation": True}),
        chatgpt_node("ask-lisbon", "context", "user", "Plan a day in Lisbon", T0),
        chatgpt_node("answer-lisbon", "ask-lisbon", "assistant", "Start at Belém.", T0 + 10),
        chatgpt_node("ask-porto", "context", "user", "Plan a day in Porto", T0 + 100),  # the question, edited
        chatgpt_node("call", "ask-porto", "assistant", "search('Porto weather')", T0 + 105, recipient="browser",
                     content={"content_type": "code", "language": "unknown", "text": "search('Porto weather')"}),
        chatgpt_node("result", "call", "tool", "Sunny, 24°C", T0 + 106, author={"role": "tool", "name": "browser"},
                     content={"content_type": "tether_browsing_display", "result": "Sunny, 24°C"}),
        chatgpt_node("answer-porto-1", "result", "assistant", "Walk the Ribeira.", T0 + 110),
        chatgpt_node("answer-porto-2", "result", "assistant", "Take tram 1 to Foz; it will be sunny.", T0 + 120),
        chatgpt_node("photo", "answer-porto-2", "user", "", None, content={"content_type": "multimodal_text", "parts": [
            {"content_type": "image_asset_pointer", "asset_pointer": "file-service://file-1"}, "Is this the tram?"]}),
    ]
    return chatgpt_conversation("porto-trip", "Day trips", nodes, current="photo")


def test_a_chatgpt_conversation_imports_its_branch_in_view_user_and_assistant_only(tmp_path):
    path = write_chatgpt(tmp_path / "conversations.json", [
        branched(), chatgpt_chain("groceries", "Groceries", [("Milk or oat milk?", "Oat, for the coffee.", T0 + 500)])])

    transcript = read_export(path)

    assert read(transcript) == [
        ("porto-trip", "user", "porto-trip", "Plan a day in Porto", T0 + 100),
        ("porto-trip", "assistant", "porto-trip", "Take tram 1 to Foz; it will be sunny.", T0 + 120),
        ("porto-trip", "user", "porto-trip", "[image]\nIs this the tram?", T0),  # no create_time: the conversation's
        ("groceries", "user", "groceries", "Milk or oat milk?", T0 + 500),
        ("groceries", "assistant", "groceries", "Oat, for the coffee.", T0 + 520),
    ]
    assert transcript.omitted == {"system or tool message": 4, "hidden message": 1}
    together = read(read_export(path, me="ana", into="chatgpt"))
    assert {(chat, user) for chat, _, user, *_ in together} == {("chatgpt", "ana")} and len(together) == 5


def test_a_chatgpt_conversation_that_cannot_be_read_is_named_by_its_number_and_title_if_it_has_one(tmp_path):
    broken = {**chatgpt_chain("gone", "Trip to Oslo", [("Ferry times?", "Hourly.", T0)]), "current_node": "lost"}
    untitled = {**broken, "title": None, "conversation_id": "gone-2", "id": "gone-2"}
    path = write_chatgpt(tmp_path / "conversations.json", [
        chatgpt_chain("fine", "Fine", [("Hi", "Hello.", T0)]), broken, untitled])

    with pytest.raises(TranscriptError, match=r"^conversation 2 \('Trip to Oslo'\): its current_node is not a node"):
        read(read_export(path))
    skipping = read_export(path, skip_invalid=True)

    assert [text for *_, text, _ in read(skipping)] == ["Hi", "Hello."]
    assert [str(refusal) for refusal in skipping.skipped] == [
        "conversation 2 ('Trip to Oslo'): its current_node is not a node of its mapping",
        "conversation 3: its current_node is not a node of its mapping"]  # no "(None)" for a missing title


def test_zips_as_downloaded_are_opened_and_the_format_is_told_by_the_content(tmp_path):
    chatgpt = write_chatgpt(tmp_path / "conversations.json", [branched()])
    telegram = bo_chat(tmp_path)
    chatgpt_zip = zipped(chatgpt, tmp_path / "chatgpt-export.zip", beside=("chat.html", "user.json"))
    telegram_zip = zipped(telegram, tmp_path / "Telegram.zip", folder="ChatExport_2024-05-01/",
                          beside=("photos/photo_1@14-11-2023_22-16-20.jpg",))
    jsonl = tmp_path / "goat.jsonl"
    jsonl.write_text(json.dumps({"chat_id": "c", "role": "user", "content": "Hi", "timestamp": T0}) + "\n", "utf-8")
    html = tmp_path / "messages.html"
    html.write_text("<!DOCTYPE html>\n<html>", "utf-8")

    assert [(e.format, e.member) for e in map(find_export, (chatgpt, telegram, chatgpt_zip, telegram_zip, jsonl))] == [
        ("chatgpt", None), ("telegram", None), ("chatgpt", "conversations.json"),
        ("telegram", "ChatExport_2024-05-01/result.json"), ("jsonl", None)]
    assert read(read_export(chatgpt_zip)) == read(read_export(chatgpt))
    assert read(read_export(telegram_zip)) == read(read_export(telegram))
    with pytest.raises(ExportError, match="it is HTML: export the chat as JSON"):
        find_export(html)
    with pytest.raises(ExportError, match="holds no result.json"):
        find_export(chatgpt_zip, "telegram")
    with pytest.raises(ExportError, match="holds no messages: is it ChatGPT's conversations.json"):
        read_export(telegram, "chatgpt")


def test_folders_as_unpacked_are_read_for_the_export_they_hold(tmp_path):
    (tmp_path / "ChatExport_2024-05-01").mkdir()
    telegram = bo_chat(tmp_path / "ChatExport_2024-05-01").parent  # as Telegram Desktop writes it
    (telegram / "photos").mkdir()
    chatgpt = tmp_path / "chatgpt-export"  # the mailed zip, unpacked
    chatgpt.mkdir()
    write_chatgpt(chatgpt / "conversations.json", [branched()])
    for beside in ("chat.html", "user.json"):
        (chatgpt / beside).write_text("{}", "utf-8")

    assert find_export(telegram) == find_export(telegram / "result.json")
    assert find_export(chatgpt) == find_export(chatgpt / "conversations.json")
    assert read(read_export(telegram)) == read(read_export(telegram / "result.json"))
    with pytest.raises(ExportError, match="^a folder, not a file, and it holds no result.json: name the file"):
        find_export(chatgpt, "telegram")
    with pytest.raises(ExportError, match="holds no result.json or conversations.json"):
        find_export(telegram / "photos")
    (telegram / "photos" / "messages.html").write_text("<!DOCTYPE html>\n<html>", "utf-8")  # exported as HTML
    with pytest.raises(ExportError, match=r"^a Telegram export as HTML \(messages.html\): export the chat as JSON"):
        find_export(telegram / "photos")
    write_chatgpt(telegram / "conversations.json", [branched()])
    with pytest.raises(ExportError, match="holds both a Telegram export .* say which with --format"):
        find_export(telegram)
    assert find_export(telegram, "chatgpt") == find_export(telegram / "conversations.json")


# ---- imported, as a user does it --------------------------------------------------------------------------


def chat_with_bo(path: Path) -> Path:
    """A month of Ana's chat with Bo, one line of it worth remembering."""
    said = [telegram_message(n + 1, T0 + 3600 * n, ANA if n % 2 == 0 else BO, text) for n, text in enumerate([
        "Did you book the cabin for March?", "Yes, cabin 12 at Lake Bled, paid in full.",
        "What did the vet say about Miso?", "Miso needs the kidney diet food from now on.",
        "Can you pick up the parcel?", "Sure, after work.",
    ])]
    said.insert(2, telegram_message(99, T0 + 3601, BO, "", type="service", action="pin_message", message_id=2))
    return write_telegram(path, [TelegramChat("Bo", "personal_chat", BO, said)])


@pytest.mark.slow
def test_goat_import_of_a_telegram_export_then_inspect_in_that_chat_recalls_a_line_of_it(tmp_path):
    (tmp_path / "ChatExport_2024-05-01").mkdir()
    path = chat_with_bo(tmp_path / "ChatExport_2024-05-01" / "result.json")
    env = goat_env(tmp_path / "data")

    first = ok(goat("import", path.parent, env=env, cwd=tmp_path))  # the folder Telegram Desktop wrote
    again = ok(goat("import", path, env=env, cwd=tmp_path))
    [report] = [json.loads(line) for line in ok(goat("inspect", "--chat", str(BO), "--user", str(ANA), "--json",
                                                     "what food does the cat eat now?", env=env,
                                                     cwd=tmp_path)).stdout.splitlines()]

    assert first.stdout.splitlines() == ["6 messages, 6 turns: 6 imported, 0 already there",  # two people: no answers
                                         "left out: 1 service message"]
    assert again.stdout.splitlines()[0] == "6 messages, 6 turns: 0 imported, 6 already there"
    assert "importing ChatExport_2024-05-01" in first.stderr and "6/6" in first.stderr  # the same progress bar
    assert any("Miso needs the kidney diet food" in item["content"] for item in report["l3"]), report["l3"]



@pytest.mark.slow
def test_goat_import_again_after_a_message_was_edited_rewrites_its_turn_in_l2_l3_and_the_checkpoints(tmp_path):
    """Between the imports, a `goat chat` turn in the chat read the first import's text (in its
    prompt, L2 and recall): the text the edit replaced is cut out of its checkpoints too. Ana's
    chat with a bot: each question and the bot's answer are a turn."""
    said = [telegram_message(1, T0, ANA, "Which slip is the boat in?"),
            telegram_message(2, T0 + 60, BOT, "Slip 42C, by the fuel dock."),
            telegram_message(3, T0 + 120, ANA, "And the gate code?"),
            telegram_message(4, T0 + 180, BOT, "The gate code is 5521.")]
    path = write_telegram(tmp_path / "result.json", [TelegramChat("Harbour bot", "bot_chat", BOT, said[:3])])
    with FakeOpenAI(default_reply="Noted.") as fake:
        env = goat_env(tmp_path / "data", GOAT_MODEL="fake-model", OPENAI_API_KEY="test-key",
                       OPENAI_BASE_URL=fake.base_url)
        ok(goat("import", path, env=env, cwd=tmp_path))  # the gate code was not answered yet
        ok(goat("chat", "--chat", str(ANA), "--user", str(ANA), env=env, cwd=tmp_path,
                typed=["Which slip did you say the boat is in?"]))
    said[1] = telegram_message(2, T0 + 60, BOT, "Slip 43C, by the fuel dock.", edited="2023-11-14T22:50:00",
                               edited_unixtime=str(T0 + 1800))
    write_telegram(path, [TelegramChat("Harbour bot", "bot_chat", BOT, said)])

    again = ok(goat("import", path, env=env, cwd=tmp_path))
    [chat] = json.loads(ok(goat("export", "--user", str(ANA), env=env, cwd=tmp_path)).stdout)["chats"]
    [report] = [json.loads(line) for line in ok(goat("inspect", "--chat", str(ANA), "--user", str(ANA), "--json",
                                                     "which slip is the boat in, 43C?", env=env,
                                                     cwd=tmp_path)).stdout.splitlines()]

    assert again.stdout.splitlines()[0] == "4 messages, 2 turns: 2 imported, 0 already there"  # both rewritten
    assert [m["content"] for m in chat["l2"]] == [said[0]["text"], "Slip 43C, by the fuel dock.",
                                                  said[2]["text"], said[3]["text"],
                                                  "Which slip did you say the boat is in?", "Noted."]
    assert [(e["id"], e["content"]) for e in chat["l3"]] == [
        (f"{ANA}:turn_0001", "user: Which slip is the boat in?\nassistant: Slip 43C, by the fuel dock."),
        (f"{ANA}:turn_0002", "user: And the gate code?\nassistant: The gate code is 5521."),
        (f"{ANA}:turn_0003", "user: Which slip did you say the boat is in?\nassistant: Noted.")]
    assert [item["content"] for item in report["l3"]].count(chat["l3"][0]["content"]) == 1
    assert report["prefetch"]["found"]  # found by its words and meaning, as edited
    holding = [str(file) for file in (tmp_path / "data").rglob("*") if file.is_file() and b"42C" in file.read_bytes()]
    assert holding == []  # the first import's text is erased from every file, the chat's checkpoints included



@pytest.mark.slow
def test_goat_import_into_a_chat_holding_another_persons_turns_is_refused_unless_into_names_it(tmp_path):
    """Bo's export of his private chat with Ana is kept under Ana's id, as the Bot API numbers it:
    the chat Ana already talks to the bot in. Merged there, Bo's lines would be in Ana's prompts."""
    path = write_telegram(tmp_path / "result.json", [TelegramChat("Ana", "personal_chat", ANA, [
        telegram_message(1, T0, BO, "My bank password is BOBPASS-77.", name="Bo"),
        telegram_message(2, T0 + 60, ANA, "Do not send me passwords!", name="Ana")])])
    with FakeOpenAI(default_reply="Noted.") as fake:
        env = goat_env(tmp_path / "data", GOAT_MODEL="fake-model", OPENAI_API_KEY="test-key",
                       OPENAI_BASE_URL=fake.base_url)
        ok(goat("chat", "--chat", str(ANA), "--user", str(ANA), env=env, cwd=tmp_path,
                typed=["My gym locker is number 12."]))

    def recalled() -> str:
        return ok(goat("inspect", "--chat", str(ANA), "--user", str(ANA), "--json", "what is my password?",
                       env=env, cwd=tmp_path)).stdout

    refused = goat("import", path, env=env, cwd=tmp_path)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        f"goat: {path}: chat '{ANA}' holds another person's turns, so it is not imported there: --into CHAT "
        f"imports it into a chat of your choosing (--into {ANA}: into that one all the same)"]
    assert "BOBPASS-77" not in recalled()

    chosen = ok(goat("import", path, "--into", str(ANA), env=env, cwd=tmp_path))  # the operator's choice
    assert chosen.stdout.splitlines()[0] == "2 messages, 2 turns: 2 imported, 0 already there"
    assert "BOBPASS-77" in recalled()


@pytest.mark.slow
def test_goat_import_refuses_the_one_message_holding_a_lone_surrogate_and_imports_the_rest(tmp_path):
    said = [telegram_message(n, T0 + 60 * n, ANA if n % 2 else BO, f"Message {n} of the boat log") for n in range(1, 61)]
    path = write_telegram(tmp_path / "result.json", [TelegramChat("Bo", "personal_chat", BO, said)])
    path.write_text(path.read_text("utf-8").replace("Message 8 of", "Message 8 \\udc80 of"), "utf-8")  # as JSON escapes it
    env = goat_env(tmp_path / "data")

    refused = goat("import", path, env=env, cwd=tmp_path)
    skipping = ok(goat("import", path, "--skip-invalid", env=env, cwd=tmp_path))
    [chat] = json.loads(ok(goat("export", "--user", str(ANA), env=env, cwd=tmp_path)).stdout)["chats"]

    why = f"chat {BO} (Bo), message 8: its text holds text that is not valid Unicode (lone surrogates)"
    assert refused.returncode != 0 and why in refused.stderr and "cannot be read past" not in refused.stderr
    assert skipping.stdout.splitlines()[0] == "59 messages, 59 turns: 59 imported, 0 already there"
    assert why in skipping.stdout + skipping.stderr
    assert [m["content"] for m in chat["l2"]] == [f"Message {n} of the boat log" for n in range(1, 61, 2)]  # Ana's


@pytest.mark.slow
def test_goat_import_of_a_branched_chatgpt_zip_imports_only_the_branch_in_view(tmp_path):
    path = zipped(write_chatgpt(tmp_path / "conversations.json", [branched()]), tmp_path / "export.zip")
    env = goat_env(tmp_path / "data")

    result = ok(goat("import", path, "--me", "ana", env=env, cwd=tmp_path))
    [chat] = json.loads(ok(goat("export", "--user", "ana", env=env, cwd=tmp_path)).stdout)["chats"]

    assert result.stdout.splitlines() == ["3 messages, 2 turns: 2 imported, 0 already there",
                                          "left out: 3 system or tool messages, 1 hidden message"]
    assert chat["chat_id"] == "porto-trip"
    assert [m["content"] for m in chat["l2"]] == ["Plan a day in Porto", "Take tram 1 to Foz; it will be sunny.",
                                                  "[image]\nIs this the tram?"]
    assert not any(text in json.dumps(chat) for text in ("Lisbon", "Belém", "Ribeira", "Sunny, 24"))


@pytest.mark.slow
async def test_a_bot_turn_in_the_chat_of_an_imported_bot_chat_meets_its_past(settings, embeddings, tmp_path):
    """Alice exported her chat with the bot from her account: `goat bot` hears her in the chat whose
    id is hers, and that is where the import put it."""
    path = write_telegram(tmp_path / "result.json", [TelegramChat("GOAT", "bot_chat", 777_000, [
        telegram_message(1, T0, ALICE, "My locker number is 4471.", name="Alice"),
        telegram_message(2, T0 + 2, 777_000, "Noted: locker 4471.", name="GOAT")])])
    with FakeOpenAI(responder=echo) as fake, FakeTelegram(TOKEN) as telegram:
        async with running(bot_settings(settings, fake, telegram), embeddings) as runner:
            stats = await import_turns(runner.services.memory, read_export(path))
            telegram.send(ALICE, ALICE, "What is my locker number?")
            await until(telegram, lambda: telegram.chat(ALICE))
            await turn_done(runner, ALICE)

    assert stats["imported"] == 1
    prompt = json.dumps(fake.requests[-1]["messages"])
    assert "My locker number is 4471." in prompt and "Noted: locker 4471." in prompt
