"""Section ``import``: turns per second of `goat import`, embeddings included.

A JSON Lines transcript of LoCoMo-like turns over a few chats is read and imported into empty
embedded backends with `goat import`'s code (``read_export`` + ``import_turns``), the
model loaded and the backends connected beforehand (the import indexes the words as it
writes, so the turns/s are those of turns searchable every way). The same turns are imported
again, each time into empty backends, as a Telegram Desktop export and as a ChatGPT export
(tests/support/exports.py writes them). The same texts are finally
embedded alone, to show how much of the import the encoder takes, and the
encoder's resident memory is measured in a process of its own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from bench.harness import BenchOptions, conditions, isolated_settings
from bench.report import SectionResult, markdown_table
from bench.synthetic_archive import ChatPlan, TextPool, transcript_lines, turn_time
from graph.importing.exports import read_export
from graph.importing.importer import import_turns
from graph.settings import Settings
from nodes.services import Services
from memory.encoders import LocalEmbeddings
from memory.turns import archive_content
from tests.support.exports import TelegramChat, chatgpt_chain, telegram_message, write_chatgpt, write_telegram

IMPORT_CHATS = 10
FORMAT_NAMES = {"jsonl": "JSON Lines", "telegram": "Telegram Desktop (result.json)",
                "chatgpt": "ChatGPT (conversations.json)"}
# A process that loads the encoder and embeds batches of texts of one to eight lines, printing
# its resident memory (MB) before and after: what the encoder adds to a process once its
# buffers have grown to a long batch's needs (one batch of short texts leaves them smaller,
# and the figure then varies from run to run by a third).
_RESIDENT = """
import re, sys
def resident():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
from memory.encoders import load_encoder
before = resident()
encoder = load_encoder(sys.argv[1])
for batch in range(6):
    encoder.encode([f"turn {batch}.{i}: a line of some ten words about gardens and trips " * (1 + i % 8)
                    for i in range(64)], every_language=False)  # an English chat's lines
print(before, resident())
"""
TARGET_TURNS_PER_S = 300
BENCH_OWNER = 5_550_001  # the account the benchmark's Telegram export is of


def plans(turns: int) -> list[ChatPlan]:
    per_chat = -(-turns // IMPORT_CHATS)
    return [ChatPlan(f"import-{n:02d}", first, min(per_chat, turns - first))
            for n, first in enumerate(range(0, turns, per_chat))]


def telegram_chats(chats: list[ChatPlan], pool: TextPool) -> Iterator[TelegramChat]:
    """Each of ``chats`` as a private chat of BENCH_OWNER with one person, their turns
    alternating (the owner asks, the other answers)."""
    for number, plan in enumerate(chats):
        peer = BENCH_OWNER + 1 + number
        yield TelegramChat(f"Friend {number}", "personal_chat", peer, _telegram_turns(plan, pool, peer))


def _telegram_turns(plan: ChatPlan, pool: TextPool, peer: int) -> Iterator[dict[str, Any]]:
    for position in range(plan.turns):
        asked, answer = pool.turn(plan, position)
        when = turn_time(plan, position).timestamp()
        yield telegram_message(2 * position + 1, when, BENCH_OWNER, asked, name="Ana")
        yield telegram_message(2 * position + 2, when + 30, peer, answer)


def chatgpt_conversations(chats: list[ChatPlan], pool: TextPool) -> Iterator[dict[str, Any]]:
    """Each of ``chats`` as a ChatGPT conversation without branches."""
    for plan in chats:
        yield chatgpt_chain(plan.chat_id, plan.chat_id, (
            (*pool.turn(plan, position), turn_time(plan, position).timestamp())
            for position in range(plan.turns)))


async def run(options: BenchOptions) -> SectionResult:
    pool = TextPool(options.locomo_records)
    chats = plans(options.import_turns)
    folder = options.root / "import-scratch"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        transcript_path = folder / "transcript.jsonl"
        with transcript_path.open("w", encoding="utf-8") as out:
            out.writelines(transcript_lines(chats, pool))
        files = {"jsonl": transcript_path,
                 "telegram": write_telegram(folder / "result.json", telegram_chats(chats, pool), owner=BENCH_OWNER),
                 "chatgpt": write_chatgpt(folder / "conversations.json", chatgpt_conversations(chats, pool))}
        formats = {name: await timed_import(options.settings, folder / f"goat-{name}", path)
                   for name, path in files.items()}
        texts = [archive_content(*pool.turn(plan, position)) for plan in chats for position in range(plan.turns)]
        # The import's encoder alone, as it encodes an English chat's lines.
        encode = partial(LocalEmbeddings(name=options.settings.embeddings.model).encoder.encode, every_language=False)
        encode(texts[:1])  # its first pass pages the weights in, as the imports' warm-up did
        started = time.perf_counter()
        encode(texts)
        embed_s = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    jsonl = formats["jsonl"]
    data: dict[str, Any] = {
        "conditions": conditions(),
        "chats": len(chats),
        **jsonl,
        "formats": formats,
        "embedding_only_docs_per_s": round(len(texts) / embed_s, 1),
        "embedding_share_of_import": round(embed_s / jsonl["seconds"], 3),
        "target_turns_per_s": TARGET_TURNS_PER_S,
        "encoder_resident_mb": encoder_resident_mb(options.settings.embeddings.model),
    }
    table = markdown_table(
        ["turns", "chats", "import s", "turns/s", "embedding alone, docs/s", "embedding's share of the import",
         "encoder's resident MB", "target turns/s"],
        [(data["imported"], data["chats"], data["seconds"], data["turns_per_s"], data["embedding_only_docs_per_s"],
          f"{data['embedding_share_of_import']:.0%}", data["encoder_resident_mb"], f"≥ {TARGET_TURNS_PER_S}")],
        "Import throughput (`goat import`: parse, embed, write L3, the word index and L2)",
    )
    by_format = markdown_table(
        ["format", "turns", "import s", "turns/s"],
        [(FORMAT_NAMES[name], result["imported"], result["seconds"], result["turns_per_s"])
         for name, result in formats.items()],
        "The same turns from each format `goat import` reads (each into empty backends)",
    )
    return SectionResult("import", data, [table, by_format])


async def timed_import(settings: Settings, folder: Path, path: Path) -> dict[str, Any]:
    """Turns/s of `goat import` of ``path`` into empty backends in ``folder``, its checking pass
    included; the model loaded and the backends connected first."""
    async with Services(isolated_settings(settings, folder)) as services:
        await services.memory.connect(warm=True)
        started = time.perf_counter()
        stats = await import_turns(services.memory, read_export(path))
        seconds = time.perf_counter() - started
    return {"turns": stats["turns"], "imported": stats["imported"], "seconds": round(seconds, 2),
            "turns_per_s": round(stats["imported"] / seconds, 1)}


def encoder_resident_mb(name: str) -> float:
    """What loading the encoder and embedding batches add to a fresh process's resident memory."""
    printed = subprocess.run([sys.executable, "-c", _RESIDENT, name], capture_output=True, text=True, check=True)
    before, after = map(float, printed.stdout.split())
    return round(after - before, 1)
