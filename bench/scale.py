"""Section ``scale``: a year of a busy group, and a serving process whose memory does not grow with it.

One chat of ``--scale-big-chat`` messages (1 000 000 by default: a group of 20 people over two
years) beside ``--scale-chats`` chats of ``--scale-chat-messages`` (1 000 of 1 000), built through
`goat import`'s code path (the archive's own write path and word index) and cached. Each turn is
one of ``BASE_TURNS`` exchanges of LoCoMo's lines, a member's line and a reply, so the encoder
embeds each of those once and the archive builds at Chroma's and Redis's pace
(:class:`PooledLines`); every ``KEY_EVERY``-th turn carries a label of its own, embedded as the
exchange without it. Two messages a turn: a chat of M messages holds M/2 entries.

Then, in one serving process (``chroma.open_chats`` as the settings say; with ``--scale-chroma
server``, Chroma a ``chroma run`` server beside it, whose memory is reported too), the questions a turn
waits on before its model (``goat inspect``'s path: prefetch, the loads, gap filter, budget,
assemble; nothing written) in the big chat and in small ones, by the mechanism they call on
(meaning, words, a month's range, a year's, a key); then one question in every chat, and the
process's resident memory after it; then ``--scale-add`` more messages written into the big
chat through the same write path, and the memory after them. It runs on a throw-away copy of the
cached archive, which stays as built.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import BenchOptions, bench_runner, conditions, isolated_settings, scratch_copy
from bench.load import TextsEncodedOnce
from bench.report import SectionResult, distribution, markdown_table
from bench.servers import chroma_over_http
from bench.support.processes import free_port
from bench.synthetic_archive import (FORMAT_VERSION, IMPORT_CHUNK, ChatPlan, TextPool, ensure_built, key_question,
                                     transcript_lines)
from graph.importing.importer import import_turns, transcript_of
from graph.runner import TurnRunner
from memory.encoders import LocalEmbeddings, load_encoder
from memory.facade import Memory, measurement_hooks

END = datetime(2025, 6, 30, 12, 0, tzinfo=timezone.utc)
SPAN = timedelta(days=730)
MEMBERS = ("Maya", "Tom", "Ines", "Ravi", "Lena", "Omar", "Sofia", "Jonas", "Aiko", "Pedro", "Nadia", "Felix",
           "Chloe", "Viktor", "Amara", "Luca", "Hana", "Diego", "Elif", "Sam")
BASE_TURNS = 4_000  # distinct exchanges the turns are drawn from (each embedded once)
BIG_CHAT = "scale-big"
SMALL_CHAT_PREFIX = "scale-chat-"
MECHANISMS = ("meaning", "words", "month", "year", "keys")
SMALL_CHATS_ASKED = 10  # the small chats questions rotate over, each read in before any is timed
_LABEL = re.compile(r" \(I filed that as [a-z]+-\d+\.\)")


class PooledLines(TextsEncodedOnce):
    """A passage's vector is its exchange's, made once: a label a turn carries is not embedded
    (the exchange without it stands for it), so a million turns cost a few thousand encodings."""

    def encode(self, texts: list[str], *, query: bool = False, every_language: bool = True) -> np.ndarray:
        return super().encode(texts if query else [_LABEL.sub("", text) for text in texts], query=query,
                              every_language=every_language)


class GroupLines(TextPool):
    """A group's turns over two years: each one of ``BASE_TURNS`` exchanges of a member's line
    (named) and a reply, spread evenly over the chat's span."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        super().__init__(records)
        rng = random.Random(99)
        self.base = [(f"{rng.choice(MEMBERS)}: {rng.choice(self.utterances)}", rng.choice(self.utterances))
                     for _ in range(BASE_TURNS)]

    def turn(self, plan: ChatPlan, position: int) -> tuple[str, str]:
        user, reply = self.base[random.Random(plan.first + position).randrange(len(self.base))]
        if key := plan.key_of(position):
            user += f" (I filed that as {key}.)"
        return user, reply

    def time_of(self, plan: ChatPlan, position: int) -> datetime:
        return END - SPAN + SPAN * (position + 1) / plan.turns

    def rare_words(self) -> list[str]:
        """Long words the exchanges hold, each in a few of them: what a search by words finds."""
        counts: dict[str, int] = defaultdict(int)
        for user, reply in self.base:
            for word in set(re.findall(r"[a-z]{9,}", f"{user} {reply}".lower())):
                counts[word] += 1
        return sorted(word for word, count in counts.items() if 2 <= count <= 5)


def plans(options: BenchOptions) -> list[ChatPlan]:
    """The big chat, then the small ones, in turns (two messages each); keys unique archive-wide."""
    big = ChatPlan(BIG_CHAT, 0, max(1, options.scale_big_chat // 2))
    small_turns = max(1, options.scale_chat_messages // 2)
    return [big, *(ChatPlan(f"{SMALL_CHAT_PREFIX}{n:04d}", big.turns + n * small_turns, small_turns)
                   for n in range(options.scale_chats))]


async def ensure_scale_archive(options: BenchOptions,
                               pool: GroupLines) -> tuple[Path, list[ChatPlan], float, bool]:
    """The cached archive (built first if missing), the seconds its build took, and whether it
    was built by this process (whose memory then holds what the build left)."""
    chats = plans(options)
    model = options.settings.embeddings.model
    folder = options.root / f"scale-{chats[0].turns * 2}-{len(chats) - 1}x{chats[-1].turns * 2}-{model}"
    spec = {"version": FORMAT_VERSION, "texts": pool.digest, "base_turns": BASE_TURNS, "span_days": SPAN.days,
            "chats": [asdict(plan) for plan in chats]}
    timing = folder / "build.json"
    built_here, started = not timing.is_file(), time.perf_counter()
    await ensure_built(options.settings, folder, spec, [(chats, lambda: PooledLines(load_encoder(model)))], pool)
    if not timing.is_file():
        timing.write_text(json.dumps({"build_seconds": round(time.perf_counter() - started, 1)}), encoding="utf-8")
    return folder, chats, json.loads(timing.read_text(encoding="utf-8"))["build_seconds"], built_here


def questions(mechanism: str, chat: ChatPlan, pool: GroupLines) -> itertools.cycle:
    """Endless messages for one mechanism in one chat."""
    if mechanism == "meaning":
        texts = pool.questions[::7] or pool.questions
    elif mechanism == "words":
        texts = [f"Who said something about {word}?" for word in pool.rare_words()[::5]]
    elif mechanism == "month":
        months = [END - SPAN + timedelta(days=30 * n + 15) for n in range(1, 24, 3)]
        texts = [f"What did we talk about in {month:%B %Y}?" for month in months]
    elif mechanism == "year":
        texts = [f"What did we talk about in {year}?" for year in (END.year - 1, END.year)]
    else:
        keys = chat.keys()
        texts = [key_question(keys[n]) for n in range(0, len(keys), max(1, len(keys) // 50))]
    return itertools.cycle(texts or ["What did we talk about?"])


def resident_mb(pid: int | str = "self") -> dict[str, float]:
    """A process's resident memory now and at its peak (Linux's /proc), MB: this one's by default."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {name: round(int(fields[key].split()[0]) / 1024, 1) for name, key in (("now", "VmRSS"), ("peak", "VmHWM"))}


async def asked(runner: TurnRunner, chat_id: str, text: str, now: float) -> tuple[float, dict[str, Any]]:
    """One question's path up to the model (nothing written), timed; the state it ends in."""
    await measurement_hooks(runner.services.memory).forget_searches(chat_id)
    await measurement_hooks(runner.services.memory).forget_encodings()
    started = time.perf_counter()
    state = await runner.inspect(chat_id, text, now=now)
    return (time.perf_counter() - started) * 1000, state


@contextmanager
def chroma_for(options: BenchOptions, folder: Path) -> Iterator[tuple[str, int] | None]:
    """None: Chroma embedded in the serving process; with ``--scale-chroma server``, a ``chroma
    run`` serving the copy's store beside it (its URL and PID)."""
    if options.scale_chroma != "server":
        yield None
        return
    with chroma_over_http(folder / "chroma", free_port()) as served:
        yield served


async def measure(options: BenchOptions, folder: Path, chats: list[ChatPlan], pool: GroupLines,
                  server: tuple[str, int] | None) -> dict[str, Any]:
    big, small = chats[0], (chats[1:] or chats[:1])[:SMALL_CHATS_ASKED]
    now = (END + timedelta(hours=1)).timestamp()
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    fired: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    injected: dict[tuple[str, str], list[int]] = defaultdict(list)
    timed_out: dict[tuple[str, str], int] = defaultdict(int)
    nodes: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    rotation = itertools.cycle(small)
    settings = isolated_settings(options.settings, folder)
    if server is not None:
        settings = settings.model_copy(update={"chroma": settings.chroma.model_copy(update={"url": server[0]})})

    def memory_now() -> dict[str, float]:  # the server's too, when Chroma is one
        served = {} if server is None else {f"server_{name}": mb for name, mb in resident_mb(server[1]).items()}
        return {**resident_mb(), **served}

    pooled = Memory(settings, embeddings=LocalEmbeddings(PooledLines(load_encoder(settings.embeddings.model))))
    async with bench_runner(settings, pooled) as (runner, _):
        memory = runner.services.memory
        rss = {"serving, before any chat": memory_now()}
        first_ms, _ = await asked(runner, big.chat_id, pool.questions[0], now)  # reads the big chat's index in
        # Timed warm: a first question gives up at the deadline while Chroma reads the index on
        # (seconds for the big chat), and the questions after it would wait on that read.
        # A chat's first search is reported below.
        for chat in (big, *small):
            await measurement_hooks(memory).nearest([chat.chat_id], pool.questions[1], 5)
        rss["after the chats asked were read in"] = memory_now()
        streams = {(layout, mechanism): questions(mechanism, chat, pool)
                   for layout, chat in (("big", big), ("small", small[0])) for mechanism in MECHANISMS}
        for _ in range(options.turns):
            for (layout, mechanism), stream in streams.items():
                chat = big if layout == "big" else next(rotation)
                text = next(stream) if mechanism != "keys" or layout == "big" else next(questions("keys", chat, pool))
                took, state = await asked(runner, chat.chat_id, text, now)
                samples[(layout, mechanism)].append(took)
                fired[(layout, mechanism)].update(state["prefetch"]["fired"])
                injected[(layout, mechanism)].append(len(state.get("l3") or []))
                timed_out[(layout, mechanism)] += bool(state["prefetch"]["timed_out"])
                nodes[(layout, mechanism)].append(dict(state.get("latency_ms") or {}))
        rss["after the questions"] = memory_now()
        touched_ms = await touch_every_chat(memory, chats, pool)
        rss["after touching every chat"] = memory_now()
        held = await measurement_hooks(memory).held_chats()
        added_s = await add_to(memory, ChatPlan(big.chat_id, sum(chat.turns for chat in chats), options.scale_add // 2),
                               pool)
        rss[f"after adding {options.scale_add:,} messages to the big chat"] = memory_now()
    return {
        "added_messages": options.scale_add, "add_seconds": round(added_s, 1),
        "first_question_big_chat_ms": round(first_ms, 1),
        "cells": {f"{layout}/{mechanism}": {"ms": distribution(values), "fired": dict(fired[(layout, mechanism)]),
                                            "l3_injected": distribution(injected[(layout, mechanism)]),
                                            "timed_out": timed_out[(layout, mechanism)],
                                            "nodes_ms": _by_node(nodes[(layout, mechanism)])}
                  for (layout, mechanism), values in samples.items()},
        "rss_mb": rss, "held_chats_at_end": held, "touch_every_chat_s": round(sum(touched_ms) / 1000, 1),
        "chat_search_when_touched_ms": distribution(touched_ms),
    }


async def touch_every_chat(memory: Memory, chats: list[ChatPlan], pool: GroupLines) -> list[float]:
    """One search by meaning in every chat, the big one first (most chats read in from disk by
    it: the cost of a chat's first question in a process); each one's ms."""
    took = []
    for chat in chats:
        started = time.perf_counter()
        await measurement_hooks(memory).nearest([chat.chat_id], pool.questions[2], 5)
        took.append((time.perf_counter() - started) * 1000)
    return took


async def add_to(memory: Memory, plan: ChatPlan, pool: GroupLines) -> float:
    """``plan``'s turns written into its chat through the import's write path; the seconds it took."""
    started, lines = time.perf_counter(), transcript_lines([plan], pool)
    while chunk := list(itertools.islice(lines, 2 * IMPORT_CHUNK)):
        await import_turns(memory, transcript_of(chunk))
    await measurement_hooks(memory).settle()
    return time.perf_counter() - started


def _by_node(states: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    names = sorted({name for state in states for name in state})
    return {name: distribution(state[name] for state in states if name in state) for name in names}


async def run(options: BenchOptions) -> SectionResult:
    pool = GroupLines(options.locomo_records)
    built, chats, build_s, built_here = await ensure_scale_archive(options, pool)
    with scratch_copy(built, options.root / "scratch") as folder, chroma_for(options, folder) as server:
        measured = await measure(options, folder, chats, pool, server)
    data = {
        "conditions": {**conditions(), "questions_per_cell": options.turns,
                       "open_chats": options.settings.chroma.open_chats, "chroma": options.scale_chroma,
                       "prefetch_timeout_ms": options.settings.prefetch.timeout * 1000},
        "big_chat_messages": chats[0].turns * 2, "chats": len(chats) - 1,
        "chat_messages": chats[-1].turns * 2 if len(chats) > 1 else 0,
        "entries": sum(chat.turns for chat in chats), "build_seconds": build_s, "built_in_this_process": built_here,
        **measured,
    }
    return SectionResult("scale", data, tables(data))


def _spread(d: dict[str, Any]) -> str:
    return f"{d['p50']:.1f} / {d['p95']:.1f} / {d['max']:.1f}"


def tables(data: dict[str, Any]) -> list[str]:
    title = (f"A question's path up to the model, ms: p50 / p95 / max (big chat {data['big_chat_messages']:,} "
             f"messages beside {data['chats']:,} chats of {data['chat_messages']:,}; archive built once in "
             f"{data['build_seconds']:,.0f} s)")
    rows = [(*cell.split("/"), _spread(figures["ms"]),
             ", ".join(f"{name} {count}" for name, count in sorted(figures["fired"].items())) or "none",
             figures["l3_injected"]["mean"], figures["timed_out"])
            for cell, figures in data["cells"].items()]
    result = [markdown_table(["chat", "asked by", "path to the model", "mechanisms fired (of n asked)",
                              "L3 entries injected, mean", "past the deadline"], rows, title)]
    served = data["conditions"].get("chroma") == "server"
    rss_rows = [(moment, figures["now"], figures["peak"],
                 *((figures["server_now"], figures["server_peak"]) if served else ()))
                for moment, figures in data["rss_mb"].items()]
    result.append(markdown_table(
        ["serving process", "resident MB", "peak MB", *(("chroma run: resident MB", "peak MB") if served else ())],
        rss_rows,
        f"Memory (chroma.open_chats = {data['conditions']['open_chats']}; {data['held_chats_at_end']} chats' "
        f"indexes held at the end; a chat's search when touched {_spread(data['chat_search_when_touched_ms'])} ms; "
        f"the big chat's first question {data['first_question_big_chat_ms']:,} ms; {data['added_messages']:,} "
        f"messages added in {data['add_seconds']} s"
        f"{'; the archive built in this process first, what it left included' if data['built_in_this_process'] else ''})"))
    return result
