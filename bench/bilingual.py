"""`goat bench --sections bilingual`: every LoCoMo conversation alone and told with lines in
Russian, Spanish and German (the scenario and its measurement: support/bilingual.py)."""

from __future__ import annotations

import shutil
import sys
from datetime import timedelta

from bench.harness import BenchOptions, bench_runner, conditions, isolated_settings
from bench.report import SectionResult, markdown_table, percent
from graph.importing.importer import import_turns, transcript_of
from graph.observability.why_report import TurnReport, turn_report
from support.bilingual import ASKED, TOLD, conversations, measure


async def run(options: BenchOptions) -> SectionResult:
    """The section: every LoCoMo conversation alone and told with the other languages' lines,
    each pair imported afresh and asked the same questions."""
    from tqdm import tqdm

    folder = options.root / "bilingual-scratch"
    shutil.rmtree(folder, ignore_errors=True)
    rows = []
    async with bench_runner(isolated_settings(options.settings, folder)) as (runner, _):
        for record in options.locomo_records:
            alone, both = conversations(record)
            for conversation in (alone, both):
                with tqdm(total=conversation.turns, unit="turn", desc=f"importing {conversation.chat_id}",
                          file=sys.stderr) as bar:
                    await import_turns(runner.services.memory, transcript_of(conversation.jsonl().splitlines(True)),
                                       progress=bar.update)
            await runner.services.memory.measuring.settle()  # the English lines given e5's block, as a running bot does
            now = (both.last_time + timedelta(hours=1)).timestamp()

            async def inspect(chat_id: str, message: str) -> TurnReport:
                return turn_report(await runner.inspect(chat_id, message, now=now))

            rows.append((alone.sample_id, await measure(inspect, alone, False), await measure(inspect, both, True)))
    shutil.rmtree(folder, ignore_errors=True)
    data = {"conversations": [{"sample": sample, "alone": vars(a), "bilingual": vars(b)} for sample, a, b in rows],
            "conditions": {**conditions(), "data": str(options.locomo_path)}}
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
    return SectionResult("bilingual", data, [table])
