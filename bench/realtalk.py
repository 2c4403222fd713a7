"""Section ``realtalk``: chats between real people, over three weeks.

REALTALK (Lee et al. 2025) holds 21 days of messaging between pairs of real people; chats 1, 2,
5, 8 and 9, converted to LoCoMo's layout, keep each message's own ``timestamp`` (a session there
spans days, and a message is archived at its own time) and give each chat the moment its
questions are asked (``asked_at``). Each chat is imported as `goat import` would, and every
question (1 multi-hop, 2 temporal, 3 commonsense) is asked in it at that moment through the turn
up to the model, as the LoCoMo section asks. Measured: the share of a question's evidence
messages in the injected L3 block and its tokens, beside plain top-k (whole turns, by meaning)
packed into the same tokens; by category and by half (the LoCoMo section's rule: the last two
chats, 8 and 9, are held back and decide; 1, 2 and 5 tune); and what the LoCoMo section's twenty
off-topic messages inject in the same chats.

An evidence message counts as injected when its own turn's entry holds its first 80 characters,
or, for a message over 400 characters, its sentence sharing the most words with the gold answer
(as the LongMemEval section counts): GOAT may inject an excerpt of a long turn, and a message as
short as "Yeah" stands in many turns.

The chats are read from ``$GOAT_REALTALK`` or ``../shared/data/realtalk-dev.json``; the section
says in one line that it is skipped without them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench.harness import BenchOptions, bench_runner, conditions, isolated_settings
from bench.longmemeval import (Asked, ask_all, data_file, measured, messages_by_dialog_id, skipped, summarise,
                               tables)
from bench.report import SectionResult
from bench.retrieval import OFF_TOPIC, half_of, import_conversations
from bench.support import locomo

DEFAULT_PATH = locomo.REALTALK_PATH
ENV_VAR = "GOAT_REALTALK"
CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "commonsense"}


def data_path() -> Path | None:
    """The chats' file, or None when there is none."""
    return data_file(ENV_VAR, DEFAULT_PATH)


async def run(options: BenchOptions) -> SectionResult:
    path = data_path()
    if path is None:
        return skipped("realtalk", ENV_VAR, DEFAULT_PATH)
    chats = locomo.load(path)
    conversations = [locomo.realtalk_conversation(chat) for chat in chats]
    said = [messages_by_dialog_id(chat) for chat in chats]

    def row(number: int, chat: dict[str, Any], conversation: locomo.Conversation, qa: locomo.Question,
            asked: Asked) -> dict[str, Any]:
        return {"chat": conversation.sample_id, "half": half_of(number, len(chats)),
                "category": CATEGORY_NAMES[qa.category], **measured(said[number], qa, asked, in_its_turn=True)}

    folder = options.root / "realtalk-scratch"
    shutil.rmtree(folder, ignore_errors=True)
    async with bench_runner(isolated_settings(options.settings, folder)) as (runner, _):
        await import_conversations(runner, conversations)
        rows, off_topic = await ask_all(runner, chats, conversations, locomo.Conversation.answerable,
                                        lambda number: list(OFF_TOPIC), row)
    shutil.rmtree(folder, ignore_errors=True)
    data = summarise(rows, off_topic, "category", tuple(CATEGORY_NAMES.values()))
    data["conditions"] = {
        **conditions(), "data": str(path), "turns": sum(c.turns for c in conversations),
        "messages": sum(len(c.messages) for c in conversations),
        "chats": {c.sample_id: half_of(number, len(chats)) for number, c in enumerate(conversations)}}
    return SectionResult("realtalk", data, tables(
        data, "category", "REALTALK: the evidence messages in the injected L3 block (each chat asked at its asked_at)",
        "evidence"))

