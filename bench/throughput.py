"""Section ``import``: turns per second and peak resident memory of `goat import`, beside the encoder alone.

Three transcripts, each imported by `goat import`'s code in a fresh process of its own into empty
embedded backends (the model loaded and the backends connected first; the checking pass and
e5's block for chats found to hold another language included, as `goat import` runs them):
short turns, LoCoMo-like exchanges over a few chats; real people's messages (REALTALK's chats,
when their file is there); and long ones, an assistant's chats (LongMemEval, when its file is
there). The same texts are then embedded by the encoder alone,
in a process of its own, as the import embeds them (a chat holding another language gets
e5's block on every passage), in the import's largest batches: the import's turns/s over the
encoder's is what the import adds. Each process's peak resident memory (VmHWM) is reported.
The short turns are imported again in this process, into empty backends, as a Telegram Desktop
export and as a ChatGPT export (bench/support/exports.py writes them), and the encoder's
resident memory is measured in a process of its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import longmemeval, realtalk
from bench.harness import BenchOptions, conditions, isolated_settings
from bench.report import SectionResult, markdown_table
from bench.synthetic_archive import ChatPlan, TextPool, transcript_lines, turn_time
from graph.importing.exports import read_export
from graph.importing.importer import MAX_BATCH, import_turns
from graph.settings import Settings
from nodes.services import Services
from bench.support import locomo
from bench.support.exports import TelegramChat, chatgpt_chain, telegram_message, write_chatgpt, write_telegram
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
_PEAK_MB = """
import re
def peak_mb():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
"""
# `goat import` of argv[1] into empty backends in argv[2], as the command runs it, with the
# settings read from standard input: seconds from the checking pass to the last of e5's blocks.
_IMPORT = _PEAK_MB + """
import asyncio, json, sys, time
from pathlib import Path
from bench.harness import isolated_settings
from graph.checkpoint import CheckpointedServices
from graph.importing.exports import read_export
from graph.importing.importer import import_turns
from graph.settings import Settings

async def main():
    settings = isolated_settings(Settings.model_validate_json(sys.stdin.read()), Path(sys.argv[2]))
    async with CheckpointedServices(settings) as services:
        await services.memory.connect(warm=True)
        started = time.perf_counter()
        stats = await import_turns(services.memory, read_export(Path(sys.argv[1])))
        await services.memory.admin.fill_languages()
        seconds = time.perf_counter() - started
    print(json.dumps({"turns": stats["turns"], "imported": stats["imported"], "seconds": seconds,
                      "peak_mb": peak_mb()}))

asyncio.run(main())
"""
# The encoder alone on the transcript argv[1], as the import embeds it: each chat's passages,
# in batches of argv[3], with e5's block for every passage of a chat holding another language.
_ENCODE = _PEAK_MB + """
import sys, time
from pathlib import Path
from graph.importing.exports import read_export
from memory.encoders import load_encoder, of_every_language, other_languages

chats = {}
for chat_id, turn in read_export(Path(sys.argv[1])).imported_turns():
    chats.setdefault(chat_id, []).append(turn.exchange(chat_id, 1).content)
encoder, batch = load_encoder(sys.argv[2]), int(sys.argv[3])
encoder.encode(["a first pass pages the weights in"], every_language=False)
started = time.perf_counter()
for texts in chats.values():
    latin, other_script = other_languages(texts)
    every_language = of_every_language(len(latin), other_script)
    for start in range(0, len(texts), batch):
        encoder.encode(texts[start:start + batch], every_language=every_language)
print(time.perf_counter() - started, sum(map(len, chats.values())), peak_mb())
"""
TARGET_TURNS_PER_S = 300
TARGET_OF_ENCODER = 1.3  # the import's time at most this many times the encoder's alone
TARGET_PEAK_MB = 600
BENCH_OWNER = 5_550_001  # the account the benchmark's Telegram export is of


def plans(turns: int) -> list[ChatPlan]:
    per_chat = -(-turns // IMPORT_CHATS)
    return [ChatPlan(f"import-{n:02d}", first, min(per_chat, turns - first))
            for n, first in enumerate(range(0, turns, per_chat))]


def telegram_chats(chats: list[ChatPlan], pool: TextPool) -> Iterator[TelegramChat]:
    """Each of ``chats`` as a private chat of BENCH_OWNER with one person, their messages
    alternating (the owner asks, the other answers): two people, so each message is a turn alone."""
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
        transcripts = {"short": transcript_path}
        if (real_path := real_transcript(folder / "real.jsonl")) is not None:
            transcripts["real"] = real_path
        if (long_path := long_transcript(folder / "long.jsonl", options.import_turns)) is not None:
            transcripts["long"] = long_path
        kinds = {kind: import_beside_encoder(options.settings, folder / f"goat-{kind}", path)
                 for kind, path in transcripts.items()}
        files = {"jsonl": transcript_path,
                 "telegram": write_telegram(folder / "result.json", telegram_chats(chats, pool), owner=BENCH_OWNER),
                 "chatgpt": write_chatgpt(folder / "conversations.json", chatgpt_conversations(chats, pool))}
        formats = {name: await timed_import(options.settings, folder / f"goat-{name}", path)
                   for name, path in files.items()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    data: dict[str, Any] = {
        "conditions": conditions(),
        "chats": len(chats),
        **kinds["short"]["import"],
        "kinds": kinds,
        "formats": formats,
        "targets": {"turns_per_s": TARGET_TURNS_PER_S, "of_encoder": TARGET_OF_ENCODER, "peak_mb": TARGET_PEAK_MB},
        "encoder_resident_mb": encoder_resident_mb(options.settings.embeddings.model),
    }
    return SectionResult("import", data, [kinds_table(kinds), formats_table(formats)])


def kinds_table(kinds: dict[str, dict[str, Any]]) -> str:
    rows = [(kind, result["import"]["imported"], result["import"]["turns_per_s"], result["encoder"]["turns_per_s"],
             f"{result['of_encoder']:.2f}", result["import"]["peak_mb"], result["encoder"]["peak_mb"])
            for kind, result in kinds.items()]
    return markdown_table(
        ["turns", "imported", "import turns/s", "encoder alone, turns/s", "import's time / encoder's",
         "import's peak RSS, MB", "encoder's peak RSS, MB"], rows,
        f"`goat import` beside the encoder alone on the same texts, each in a fresh process (aims: ≥ "
        f"{TARGET_TURNS_PER_S} short turns/s, ≤ {TARGET_OF_ENCODER}× the encoder's time, ≤ {TARGET_PEAK_MB} MB)")


def formats_table(formats: dict[str, dict[str, Any]]) -> str:
    return markdown_table(
        ["format", "turns", "import s", "turns/s"],
        [(FORMAT_NAMES[name], result["imported"], result["seconds"], result["turns_per_s"])
         for name, result in formats.items()],
        "The short turns from each format `goat import` reads (each into empty backends, in this process)",
    )


def real_transcript(path: Path) -> Path | None:
    """REALTALK's chats between real people, whole, as JSON Lines; None without their file."""
    if (source := realtalk.data_path()) is None:
        return None
    with path.open("w", encoding="utf-8") as out:
        for chat in locomo.load(source):
            # Paired turns of ~30 tokens, as the import's figures have always been measured.
            out.write(locomo.realtalk_conversation(chat, named=False).jsonl())
    return path


def long_transcript(path: Path, turns: int) -> Path | None:
    """An assistant's chats (LongMemEval's first items, whole) of at least ``turns`` turns, as
    JSON Lines; None without LongMemEval's file."""
    if (source := longmemeval.data_path()) is None:
        return None
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for number, item in enumerate(longmemeval.load(source)):
            if written >= turns:
                break
            conversation = longmemeval.conversation_of(number, item)
            out.write(conversation.jsonl())
            written += conversation.turns
    return path


def import_beside_encoder(settings: Settings, folder: Path, path: Path) -> dict[str, Any]:
    """`goat import` of ``path`` and the encoder alone on its texts, each in a fresh process:
    turns/s and peak resident memory."""
    done = subprocess.run([sys.executable, "-c", _IMPORT, str(path), str(folder)], input=settings.model_dump_json(),
                          capture_output=True, text=True, check=True)
    imported = json.loads(done.stdout.splitlines()[-1])
    encoded = subprocess.run([sys.executable, "-c", _ENCODE, str(path), settings.embeddings.model, str(MAX_BATCH)],
                             capture_output=True, text=True, check=True)
    seconds, texts, encoder_peak = map(float, encoded.stdout.split())
    return {
        "import": {"turns": imported["turns"], "imported": imported["imported"],
                   "seconds": round(imported["seconds"], 2),
                   "turns_per_s": round(imported["imported"] / imported["seconds"], 1),
                   "peak_mb": round(imported["peak_mb"])},
        "encoder": {"texts": int(texts), "seconds": round(seconds, 2), "turns_per_s": round(texts / seconds, 1),
                    "peak_mb": round(encoder_peak)},
        "of_encoder": round(imported["seconds"] / seconds, 2),
    }


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
