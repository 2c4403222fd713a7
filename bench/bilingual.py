"""`goat bench --sections bilingual`: every LoCoMo conversation alone and told with lines in
Russian, Spanish and German (the scenario and its measurement: bench/support/bilingual.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

from bench.harness import BenchOptions, bench_runner, conditions, isolated_settings
from bench.report import SectionResult, distribution, markdown_table, percent
from graph.importing.importer import import_turns, transcript_of
from graph.observability.why_report import TurnReport, turn_report
from memory.encoders import other_languages
from memory.facade import measurement_hooks
from bench.support.bilingual import ASKED, TOLD, conversations, measure
from bench.support.locomo import Conversation

# A fresh process reads one line's language, printing its resident memory (MB) before and after:
# what the language-identification libraries add (their models load at first use).
_LIBRARIES_RESIDENT = """
import re
def resident():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
from memory.encoders import other_languages
before = resident()
other_languages(["Ich habe einen Hund und zwei Katzen."])  # both libraries read it
print(before, resident())
"""


async def run(options: BenchOptions) -> SectionResult:
    """The section: every LoCoMo conversation alone and told with the other languages' lines,
    each pair imported afresh and asked the same questions."""
    from tqdm import tqdm

    folder = options.root / "bilingual-scratch"
    shutil.rmtree(folder, ignore_errors=True)
    rows, told = [], []
    async with bench_runner(isolated_settings(options.settings, folder)) as (runner, _):
        for record in options.locomo_records:
            alone, both = conversations(record)
            told.append(both)
            for conversation in (alone, both):
                with tqdm(total=conversation.turns, unit="turn", desc=f"importing {conversation.chat_id}",
                          file=sys.stderr) as bar:
                    await import_turns(runner.services.memory, transcript_of(conversation.jsonl().splitlines(True)),
                                       progress=bar.update)
            await measurement_hooks(runner.services.memory).settle()  # the English lines given e5's block, as a running bot does
            now = (both.last_time + timedelta(hours=1)).timestamp()

            async def inspect(chat_id: str, message: str) -> TurnReport:
                return turn_report(await runner.inspect(chat_id, message, now=now))

            rows.append((alone.sample_id, await measure(inspect, alone, False), await measure(inspect, both, True)))
    shutil.rmtree(folder, ignore_errors=True)
    reading = language_reading(told)
    data = {"conversations": [{"sample": sample, "alone": vars(a), "bilingual": vars(b)} for sample, a, b in rows],
            "language_reading": reading, "conditions": {**conditions(), "data": str(options.locomo_path)}}
    table = markdown_table(
        ["conversation", "recall alone → bilingual", "L3 tokens alone → bilingual", "other-language lines a question",
         "off-topic L3 tokens", "own-language questions: line among the 3 best, tuning / held-back"],
        [(sample, f"{percent(a.recall)} → {percent(b.recall)}", f"{a.l3_tokens:.0f} → {b.l3_tokens:.0f}",
          f"{b.other_language_lines:.2f}", f"{a.off_topic_tokens:.0f} → {b.off_topic_tokens:.0f}",
          " / ".join(f"{b.found_in_own_language[half]}/{b.asked_in_own_language[half]}" for half in ASKED))
         for sample, a, b in rows],
        f"A bilingual user: each conversation alone, and with {len(TOLD)} lines in Russian, Spanish and German told "
        "between its sessions",
    )
    return SectionResult("bilingual", data, [table, reading_table(reading)])


def language_reading(told: list[Conversation]) -> dict[str, Any]:
    """How long reading one text's language takes (µs, each message of the bilingual chats and
    each question asked of them, read once) and what the libraries add to a process's memory."""
    texts = [message["content"] for conversation in told for message in conversation.messages]
    texts += [question.text for conversation in told for question in conversation.questions]
    texts += [question for asked in ASKED.values() for _, question in asked]
    other_languages(["warm-up: the models load at first use"])
    took = []
    for text in texts:
        started = time.perf_counter()
        other_languages([text])
        took.append((time.perf_counter() - started) * 1e6)
    printed = subprocess.run([sys.executable, "-c", _LIBRARIES_RESIDENT], capture_output=True, text=True, check=True)
    before, after = map(float, printed.stdout.split())
    return {"microseconds": distribution(took), "libraries_mb": round(after - before, 1)}


def reading_table(reading: dict[str, Any]) -> str:
    took = reading["microseconds"]
    return markdown_table(
        ["texts read", "p50 per text", "p95", "the libraries' memory"],
        [(took["n"], f"{took['p50'] / 1000:.3f} ms", f"{took['p95'] / 1000:.3f} ms", f"{reading['libraries_mb']} MB")],
        "Reading a text's language (CLD2 and fastText's lid.176; these chats' messages and questions, one core)",
    )
