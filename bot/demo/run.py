"""`goat demo`: a bundled multi-session conversation, then follow-up questions, showing per
question what each memory layer contributed (and the model's answer when one is configured).

The conversation keeps its own dates (it speaks of the new year and of Bobotează on 6 January),
so the questions are asked as of the day after its last session, whatever today is."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone

from bot.demo.bundled import CHAT_ID, conversation, questions
from bot.report import render_report
from graph.importing.importer import import_turns, transcript_of
from graph.runner import TurnRunner
from graph.observability.why_report import turn_report
from graph.settings import Settings

# Noon UTC: the same calendar day in every time zone a user may set (prefetch.timezone).
ASKED_AT_HOUR = time(12, tzinfo=timezone.utc)


async def run_demo(settings: Settings, as_json: bool = False) -> int:
    async with TurnRunner.from_settings(settings) as runner:
        memory = runner.services.memory
        await memory.connect(warm=True)
        await memory.admin.forget_chat(CHAT_ID)  # every demo starts from the same bundled history
        transcript = transcript_of(conversation())
        stats = await import_turns(memory, transcript)
        days = sorted({datetime.fromtimestamp(m["timestamp"], timezone.utc).date()
                       for _, turn in transcript.imported_turns() for m in turn.messages})
        asked_at = datetime.combine(days[-1] + timedelta(days=1), ASKED_AT_HOUR)
        if not as_json:
            print(f"Loaded the demo conversation: {stats['turns']} turns over {len(days)} sessions, "
                  f"{days[0]:%-d %B %Y} to {days[-1]:%-d %B %Y}.\nThe questions are asked on "
                  f"{asked_at:%A %-d %B %Y, %H:%M} UTC, the day after the last session.\n")
            if not runner.services.model_configured:
                print("No model configured (GOAT_MODEL, OPENAI_API_KEY): showing what memory would "
                      "inject for each question, without answers.\n")
        for minute, question in enumerate(questions()):
            now = asked_at.timestamp() + 60 * minute  # a minute apart, in order
            if runner.services.model_configured:
                state = await runner.run(CHAT_ID, question, now=now)
            else:
                state = await runner.inspect(CHAT_ID, question, now=now)
            report = turn_report(state)
            print(json.dumps(report, ensure_ascii=False) if as_json else render_report(report) + "\n", flush=True)
    return 0
