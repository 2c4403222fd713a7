"""`goat demo`: a bundled multi-session conversation, then follow-up questions, showing per
question what each memory layer contributed (and the model's answer when one is configured)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from bot.importer import import_turns, parse_timestamp, transcript_of
from bot.report import render_report
from bot.runner import TurnRunner, turn_report
from memory.settings import Settings

DEMO_DIR = Path(__file__).parent
CHAT_ID = "demo"


def shifted_transcript(today: date) -> str:
    """The bundled conversation moved in time so that its last session was yesterday."""
    records = [json.loads(line) for line in (DEMO_DIR / "conversation.jsonl").read_text("utf-8").splitlines() if line.strip()]
    last_day = max(datetime.fromtimestamp(parse_timestamp(r["timestamp"]), timezone.utc).date() for r in records)
    shift = timedelta(days=(today - timedelta(days=1) - last_day).days)
    for record in records:
        moved = datetime.fromtimestamp(parse_timestamp(record["timestamp"]), timezone.utc) + shift
        record["timestamp"] = moved.isoformat()
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def questions() -> list[str]:
    return [q for q in (DEMO_DIR / "questions.txt").read_text("utf-8").splitlines() if q.strip()]


async def run_demo(settings: Settings, as_json: bool = False) -> int:
    async with TurnRunner.from_settings(settings) as runner:
        memory = runner.services.memory
        await memory.connect(warm=True)
        await memory.forget(chat_id=CHAT_ID)  # every demo starts from the same bundled history
        lines = shifted_transcript(datetime.now(timezone.utc).date()).splitlines()
        stats = await import_turns(memory, transcript_of(lines))
        if not as_json:
            print(f"Loaded the demo conversation: {stats['turns']} turns over several sessions, "
                  f"the last one yesterday.\n")
            if not runner.services.model_configured:
                print("No model configured (GOAT_MODEL, OPENAI_API_KEY): showing what memory would "
                      "inject for each question, without answers.\n")
        for question in questions():
            if runner.services.model_configured:
                state = await runner.run(CHAT_ID, question)
            else:
                state = await runner.inspect(CHAT_ID, question)
            report = turn_report(state)
            print(json.dumps(report, ensure_ascii=False) if as_json else render_report(report) + "\n", flush=True)
    return 0
