"""Synthetic archives of N turns, built through `goat import`'s code path and cached on disk.

Texts are LoCoMo utterances recombined (realistic length and vocabulary); one chat holds most
of the turns and the rest are spread over chats of ``SMALL_CHAT_TURNS``, so one archive serves
both layouts. Every turn lies in the year before ``ARCHIVE_END``, so "yesterday" or "last week"
asked just after it names a range with entries. Every ``KEY_EVERY``-th turn of a chat mentions
a unique label (``ticket-000250``) for specific-key messages to look up. A bilingual archive
(``goat bench --bilingual``, a folder of its own) is the same but for every
``OTHER_LANGUAGE_EVERY``-th turn of each chat, said in Russian or Spanish (the bilingual
section's lines): every chat then holds two languages, as a bilingual user's do.

A build is resumable: the import is idempotent, so an interrupted one carries on where it
stopped; ``manifest.json`` says what the folder holds and whether it is complete. An archive
built otherwise (other texts, layout or ``FORMAT_VERSION``) is refused until ``--rebuild``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import shutil
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.harness import BenchOptions, isolated_settings
from graph.importing.importer import import_turns, transcript_of
from graph.settings import Settings
from nodes.services import Services
from memory.encoders import Encoder, LocalEmbeddings
from memory.facade import Memory
from bench.support import locomo
from bench.support.bilingual import LINES as OTHER_LANGUAGE_LINES

ARCHIVE_END = datetime(2025, 6, 30, 12, 0, tzinfo=timezone.utc)
ARCHIVE_SPAN = timedelta(days=365)
BIG_CHAT_SHARE = 0.8
SMALL_CHAT_TURNS = 100
KEY_EVERY = 25
KEY_LABELS = ("ticket", "order", "booking", "invoice")
IMPORT_CHUNK = 1_000  # turns per import call: the unit of progress of a resumed build
# Bump when what the import writes changes (2: the BM25 word index in Redis; 3: times and
# vectors in that index; 4: L2 messages with their token counts; 5: stemmed words; 6: L3 entries
# with their recall lines' token counts; 7: MiniLM's 8-bit vectors; 8: each chat its own user's,
# as a private chat is, since L2 records who speaks), so that archives cached by an older version
# are not measured as if they were current.
FORMAT_VERSION = 8
# Turns 3, 13, 23… of a chat in a bilingual archive: never a labelled one (0, 25, 50, 75…).
OTHER_LANGUAGE_EVERY = 10
OTHER_LANGUAGE_AT = 3
KINDS = ("thematic", "temporal", "specific_key")  # of the messages sent to an archive
LAYOUTS = ("big chat", "small chats")  # where they are sent
TURN_INTERVAL_S = 60.0

# Messages naming a completed past range relative to a turn just after ARCHIVE_END.
TEMPORAL_MESSAGES = (
    "What did we talk about yesterday?",
    "What did I say last week about the trip?",
    "Remind me what we discussed on 3 March.",
    "ce am vorbit ieri?",
    "What happened two days ago?",
    "What did I tell you last month about painting?",
    "What did we plan on June 12?",
    "How was the concert on 14 May?",
    "What did I say 3 weeks ago?",
    "Remind me what we said on 2 January about the kids.",
)


@dataclass(frozen=True)
class ChatPlan:
    chat_id: str
    first: int  # archive-wide index of its first turn (keys are unique across the archive)
    turns: int

    def key_of(self, position: int) -> str | None:
        """The label turn ``position`` (0-based in the chat) mentions, if any."""
        if position % KEY_EVERY:
            return None
        index = self.first + position
        return f"{KEY_LABELS[index // KEY_EVERY % len(KEY_LABELS)]}-{index:06d}"

    def keys(self) -> list[str]:
        return [key for p in range(0, self.turns, KEY_EVERY) if (key := self.key_of(p))]


def layout(size: int) -> list[ChatPlan]:
    """One chat with ``BIG_CHAT_SHARE`` of the turns, then chats of ``SMALL_CHAT_TURNS``."""
    big = max(1, round(size * BIG_CHAT_SHARE))
    plans = [ChatPlan("bench-big", 0, big)]
    for number, first in enumerate(range(big, size, SMALL_CHAT_TURNS)):
        plans.append(ChatPlan(f"bench-small-{number:04d}", first, min(SMALL_CHAT_TURNS, size - first)))
    return plans


class ArchiveMismatch(RuntimeError):
    """The cached archive was built from other texts or with another layout than asked for."""


class TextPool:
    """Realistic texts from a LoCoMo file: utterances to compose turns of, questions to ask; with
    ``bilingual``, some turns said in Russian or Spanish."""

    def __init__(self, records: list[dict[str, Any]], *, bilingual: bool = False) -> None:
        self.bilingual = bilingual
        self.utterances = locomo.utterances(records)
        if not self.utterances:
            raise ValueError("the LoCoMo file holds no utterances to compose archives from")
        self.questions = [qa["question"] for record in records for qa in record.get("qa", [])] or self.utterances
        self.digest = hashlib.sha256("\x1f".join(self.utterances).encode()).hexdigest()[:16]

    def turn(self, plan: ChatPlan, position: int) -> tuple[str, str]:
        """The (user, assistant) texts of a turn: the same for the same turn, every time."""
        rng = random.Random(plan.first + position)
        if self.bilingual and position % OTHER_LANGUAGE_EVERY == OTHER_LANGUAGE_AT:
            language = rng.choice(("ru", "es"))
            said = rng.sample([line for line in OTHER_LANGUAGE_LINES if line[0] == language], rng.choice((1, 1, 2)))
            return " ".join(user for _, user, _ in said), " ".join(reply for _, _, reply in said)
        # Mostly one utterance each, sometimes two: about the length of LoCoMo's own turns.
        user = " ".join(rng.choice(self.utterances) for _ in range(rng.choice((1, 1, 1, 2))))
        assistant = " ".join(rng.choice(self.utterances) for _ in range(rng.choice((1, 1, 2))))
        key = plan.key_of(position)
        if key:
            user += f" (I filed that as {key}.)"
        return user, assistant

    def time_of(self, plan: ChatPlan, position: int) -> datetime:
        """When the turn was said."""
        return turn_time(plan, position)


def turn_time(plan: ChatPlan, position: int) -> datetime:
    """The chat's turns spread evenly over the year before ARCHIVE_END."""
    return ARCHIVE_END - ARCHIVE_SPAN + ARCHIVE_SPAN * (position + 1) / plan.turns


def transcript_lines(plans: list[ChatPlan], pool: TextPool) -> Iterator[str]:
    """The archive as `goat import` JSON Lines, chat after chat."""
    for plan in plans:
        for position in range(plan.turns):
            user, assistant = pool.turn(plan, position)
            when = pool.time_of(plan, position)
            for role, content, at in (("user", user, when), ("assistant", assistant, when + timedelta(seconds=30))):
                yield json.dumps({"chat_id": plan.chat_id, "user_id": plan.chat_id, "role": role,
                                  "content": content, "timestamp": at.isoformat()}) + "\n"


def messages(kind: str, chats: list[ChatPlan], pool: TextPool) -> Iterator[tuple[str, str]]:
    """Endless (chat id, message) pairs of one kind, rotating over ``chats``."""
    rotation = itertools.cycle(chats)
    for n in itertools.count():
        chat = next(rotation)
        if kind == "thematic":
            text = pool.questions[(n * 7919) % len(pool.questions)]  # a stride: spread over the file
        elif kind == "temporal":
            text = TEMPORAL_MESSAGES[n % len(TEMPORAL_MESSAGES)]
        else:
            text = key_question(chat.keys()[n // len(chats) % len(chat.keys())])
        yield chat.chat_id, text


def key_question(key: str) -> str:
    """A specific-key message: it names a label the chat holds."""
    return f"What was {key} about again?"


def turn_times() -> Iterator[float]:
    """A turn a minute, from an hour after the archive's last turn ("yesterday" is in it)."""
    start = ARCHIVE_END.timestamp() + 3600.0
    return (start + TURN_INTERVAL_S * n for n in itertools.count())


@dataclass(frozen=True)
class SyntheticArchive:
    size: int
    folder: Path
    plans: list[ChatPlan]
    bilingual: bool = False

    def chats(self, layout: str) -> list[ChatPlan]:
        """The big chat alone, or the small chats (a tiny archive may have none: then the big one)."""
        return self.plans[:1] if layout == "big chat" else self.plans[1:] or self.plans[:1]


def archive_folder(root: Path, size: int, encoder: str, *, bilingual: bool = False) -> Path:
    """Each encoder's archives apart: an archive's vectors are its encoder's."""
    return root / f"archive-{size}-{encoder}{'-bilingual' if bilingual else ''}"


def discard_archives(root: Path, sizes: tuple[int, ...], encoder: str) -> None:
    """Delete the cached archives of these sizes (``--rebuild``), built or half-built, bilingual too."""
    for size in sizes:
        for bilingual in (False, True):
            shutil.rmtree(archive_folder(root, size, encoder, bilingual=bilingual), ignore_errors=True)


async def ensure_archive(settings: Settings, root: Path, size: int, pool: TextPool) -> SyntheticArchive:
    """The cached archive of ``size`` turns under ``root``, built or completed first if needed."""
    folder = archive_folder(root, size, settings.embeddings.model, bilingual=pool.bilingual)
    plans = layout(size)
    spec: dict[str, Any] = {"version": FORMAT_VERSION, "size": size, "texts": pool.digest,
                            "chats": [asdict(plan) for plan in plans]}
    if pool.bilingual:
        spec["other_languages"] = {"every": OTHER_LANGUAGE_EVERY, "at": OTHER_LANGUAGE_AT,
                                   "lines": len(OTHER_LANGUAGE_LINES)}
    await ensure_built(settings, folder, spec, [(plans, None)], pool)
    return SyntheticArchive(size, folder, plans, pool.bilingual)


# Chats imported together, and what makes the encoder that embeds them (None: the settings' own).
ChatGroup = tuple[list[ChatPlan], Callable[[], Encoder] | None]


async def ensure_built(settings: Settings, folder: Path, spec: dict[str, Any], groups: list[ChatGroup],
                       pool: TextPool) -> None:
    """The archive ``spec`` describes in ``folder``, its chats imported group by group (a build
    cut short carries on); refused when the folder holds another archive."""
    manifest = folder / "manifest.json"
    found = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else None
    if found is not None and found["spec"] != spec:  # a build of hours is not thrown away unasked
        raise ArchiveMismatch(
            f"{folder} holds an archive built from other texts, another layout or format "
            f"(texts {found['spec'].get('texts')}, version {found['spec'].get('version')}; asked: "
            f"texts {spec['texts']}, version {spec['version']}); "
            "pass the LoCoMo file it was built from, or --rebuild to replace it"
        )
    if found is None or not found["complete"]:
        folder.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps({"spec": spec, "complete": False}), encoding="utf-8")
        for plans, make_encoder in groups:
            await _import_archive(isolated_settings(settings, folder), plans, pool, folder.name,
                                  make_encoder() if make_encoder else None)
        manifest.write_text(json.dumps({"spec": spec, "complete": True}), encoding="utf-8")


async def _import_archive(settings: Settings, plans: list[ChatPlan], pool: TextPool, name: str,
                          encoder: Encoder | None = None) -> None:
    from tqdm import tqdm

    lines = transcript_lines(plans, pool)
    total = sum(plan.turns for plan in plans)
    memory = None if encoder is None else Memory(settings, embeddings=LocalEmbeddings(encoder))
    async with Services(settings, memory) as services:
        with tqdm(total=total, unit="turn", desc=f"building {name}", file=sys.stderr) as bar:
            # Two messages per turn; a chunk may split a chat, which the import resumes correctly
            # since it numbers a chat's turns after those already there.
            while chunk := list(itertools.islice(lines, 2 * IMPORT_CHUNK)):
                await import_turns(services.memory, transcript_of(chunk), progress=bar.update)


async def measure_each_size(options: BenchOptions,
                            measure: Callable[[BenchOptions, SyntheticArchive, TextPool], Awaitable[dict[str, Any]]],
                            *, bilingual: bool = False) -> dict[str, dict[str, Any]]:
    """``measure`` of the cached archive of each size the run asks for (built first if missing), by size."""
    pool = TextPool(options.locomo_records, bilingual=bilingual)
    return {str(size): await measure(options, await ensure_archive(options.settings, options.root, size, pool), pool)
            for size in options.sizes}
