"""The seed's pre-reply memory path, timed on LoCoMo conversations (run by `goat bench --sections
seed` in a process of its own: the seed's top-level ``memory`` package shadows GOAT's).

The seed is the system GOAT re-builds (takashikiari/GOAT2-General-Orchestrated-Agent-Topology
at 7efb48f), read from ``GOAT_SEED_DIR`` and run unmodified: its prefetch daemon, L0-L2 reads and
``assemble_context``, as its ``Orchestrator.run()`` calls them up to the prompt (that glue is
stated again in :func:`turn`, since ``run()`` itself needs a model). What differs from a live
seed: its Chroma collection's embedding function is GOAT's MiniLM at float32 (the model the
seed's default collection downloads, as it runs it), its Redis a private server, its facts tier
empty, its access-count bump after a search left out (:func:`skip_bump`), and the clock of its
modules simulated (an hour after each conversation's last turn), so that relative dates name
the ranges GOAT's side is asked about.

Usage: ``python -m bench.seed_side SEED_DIR LOCOMO_JSON STORE_DIR`` prints one JSON line: every
question's pre-reply milliseconds asked first (``first``: its Redis is new, so its session cache
holds nothing), then asked again (``repeated``: its cache's hits).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import chromadb
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

from graph.importing.importer import TranscriptMessage, pair_turns
from memory.encoders import LocalEmbeddings, MiniLMEncoder
from bench.support import locomo

# Float32, as the seed's default collection runs MiniLM; loaded before the seed's ``memory`` takes the name.
ENCODER = LocalEmbeddings(MiniLMEncoder(int8=False))
for _name in [name for name in sys.modules if name == "memory" or name.startswith("memory.")]:
    sys.modules["goat_" + _name] = sys.modules.pop(_name)


class SimulatedClock:
    """Stands in for ``time`` in the seed's modules that read the wall clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


class MiniLMFunction(EmbeddingFunction[Documents]):
    """Chroma's embedding function, computed by GOAT's MiniLM at float32."""

    def __init__(self) -> None:
        pass

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 — Chroma's signature
        return list(ENCODER.encoder.encode(list(input)))

    @staticmethod
    def name() -> str:
        return "goat-bench-minilm"

    def get_config(self) -> dict:
        return {}

    @staticmethod
    def build_from_config(config: dict) -> "MiniLMFunction":
        return MiniLMFunction()

    def default_space(self) -> str:  # the seed's default collection: squared L2
        return "l2"

    def supported_spaces(self) -> list[str]:
        return ["l2", "cosine", "ip"]


class NoFacts:
    async def get_all_facts(self) -> dict[str, str]:
        return {}


async def skip_bump(chat_id: str, ids: list[str]) -> None:
    """The seed bumps the access count of what it recalled, a Chroma write behind the turn: with
    the questions asked back to back it would land in the next one's search, where a person's
    turns are seconds apart (GOAT's side, ``inspect``, writes nothing either)."""


class Registry:
    def __init__(self, layers: Any) -> None:
        self.memory_layers = layers


async def turn(seed: dict[str, Any], orchestrator: Any, layers: Any, chat_id: str, message: str) -> float:
    """Milliseconds from the message to the assembled prompt, as the seed's ``run()`` gets there:
    the prefetch daemon, the facts and L2 reads side by side, its budget, ``assemble_context``."""
    started = time.perf_counter()
    prefetch = asyncio.create_task(orchestrator._prefetch_daemon(chat_id, message))
    facts = asyncio.create_task(layers.get_identity_and_facts())
    messages = asyncio.create_task(layers.get_working_context(chat_id))
    budget = seed["calculate_intent_budget"](seed["calculate_confidence_from_query"](message),
                                             seed["calculate_complexity_from_query"](message))
    found, _, _ = await prefetch
    await layers.assemble_context(chat_id, budget=budget, l3_results=found, facts=await facts,
                                  messages=await messages)
    return (time.perf_counter() - started) * 1000


async def measure(seed_dir: Path, locomo_path: Path, store: Path) -> dict[str, list[float]]:
    sys.path.insert(0, str(seed_dir))
    # The seed's modules, named as strings: its ``memory`` package is not GOAT's.
    seed_layers, seed_merger, seed_dates, seed_working, aits, config, episodic_module, working_module, orchestration = (
        importlib.import_module(name) for name in (
            "memory.layers", "memory.result_merger", "memory.temporal_parser", "memory.working.working",
            "memory.aits", "memory.config", "memory.episodic", "memory.working", "orchestrator.orchestrator"))
    seed = {name: getattr(aits, name) for name in (
        "calculate_intent_budget", "calculate_confidence_from_query", "calculate_complexity_from_query")}
    clock = SimulatedClock()
    seed_layers.time = seed_merger.time = seed_dates.time = clock
    socket = store / "redis.sock"
    store.mkdir(parents=True, exist_ok=True)
    socket.unlink(missing_ok=True)
    redis = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(socket), "--save", "",
                              "--appendonly", "no", "--dir", str(store)], stdout=subprocess.DEVNULL)
    try:
        while not socket.exists():
            if redis.poll() is not None:
                raise RuntimeError(f"redis-server (on PATH) ended with {redis.returncode} before listening")
            await asyncio.sleep(0.01)
        seed_working.WORKING_STORAGE_URL = f"unix://{socket}?db=0"
        working = working_module.WorkingMemory()
        timings: dict[str, list[float]] = {"first": [], "repeated": []}
        for record in locomo.load(locomo_path):
            conversation = locomo.build_conversation(record)
            chat_id = conversation.chat_id
            turns = pair_turns(TranscriptMessage(chat_id, "", m["role"], m["content"],
                                                 datetime.fromisoformat(m["timestamp"]).timestamp())
                               for m in conversation.messages)[chat_id]
            folder = store / "chroma" / chat_id
            built = (folder / "imported").exists()  # built whole by an earlier round
            if not built:
                shutil.rmtree(folder, ignore_errors=True)
            client = chromadb.PersistentClient(path=str(folder),
                                               settings=chromadb.config.Settings(anonymized_telemetry=False))
            episodic = episodic_module.EpisodicMemory()
            episodic._collection = client.get_or_create_collection(config.EPISODIC_COLLECTION_NAME,
                                                                   embedding_function=MiniLMFunction())
            layers = seed_layers.MemoryLayers(working, episodic, NoFacts(), cache_ttl=config.SESSION_CACHE_TTL)
            layers.bump_access = skip_bump
            if not built:
                for pair in turns:
                    clock.now = pair[-1].timestamp  # the seed archives a turn after its reply
                    if len(pair) == 2:
                        await orchestration._archive_turn(layers, chat_id, pair[0].content, pair[1].content)
                    else:  # a lone message, archived as the seed archives one
                        await layers.store_episodic(chat_id, f"{pair[0].role}: {pair[0].content}",
                                                    tags=["l2_full_archive"])
                (folder / "imported").touch()
            clock.now = conversation.last_time.timestamp() + 3600
            seed_dates._SETTINGS["RELATIVE_BASE"] = datetime.fromtimestamp(clock.now)
            orchestrator = orchestration.Orchestrator(Registry(layers))
            await working._get_client().flushdb()
            await turn(seed, orchestrator, layers, chat_id + "-warm-up", "When did we last talk about the weekend?")
            for question in conversation.answerable():
                timings["first"].append(await turn(seed, orchestrator, layers, chat_id, question.text))
            for question in conversation.answerable():  # its session cache's hits
                timings["repeated"].append(await turn(seed, orchestrator, layers, chat_id, question.text))
        await working._get_client().aclose()
        return timings
    finally:
        redis.terminate()
        redis.wait(timeout=10)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(*map(Path, sys.argv[1:4])))))
