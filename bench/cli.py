"""`goat bench`: running the chosen sections one after another (its options are parsed by
`goat`, bot/arguments.py).

`goat` imports this only for `goat bench`; the sections load on use.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import TYPE_CHECKING

from graph.settings import Settings, load_settings

if TYPE_CHECKING:
    from bench.harness import BenchOptions

# Section name -> its module (each has ``async def run(BenchOptions) -> SectionResult``).
SECTIONS = {
    "overhead": "bench.overhead",
    "deadline": "bench.deadline",
    "import": "bench.throughput",
    "locomo": "bench.retrieval",
    "bilingual": "bench.bilingual",
    "implicit": "bench.implicit",
    "longmemeval": "bench.longmemeval",
    "realtalk": "bench.realtalk",
    "checkpoint": "bench.checkpoint",
    "facts": "bench.facts",
    "servers": "bench.servers",
    "seed": "bench.seed",
    "load": "bench.load",
    "bot": "bench.bot_load",
    "groups": "bench.groups",
    "scale": "bench.scale",
}
DEFAULT_SIZES = (1_000, 10_000, 100_000)
DEFAULT_TURNS = 40
DEFAULT_IMPORT_TURNS = 1_000
DEFAULT_CHECKPOINT_TURNS = 200
DEFAULT_LOAD_CHATS = (1, 10, 40, 100)
DEFAULT_LOAD_CHAT_TURNS = 1_000
DEFAULT_LOAD_BIG_CHAT = 80_000
# --quick: a smoke run, in a minute or two.
QUICK_SIZES = (40,)
QUICK_TURNS = 3
QUICK_IMPORT_TURNS = 30
QUICK_CHECKPOINT_TURNS = 10
QUICK_LOAD_CHATS = (1, 3)
QUICK_LOAD_CHAT_TURNS = 20
QUICK_LOAD_BIG_CHAT = 0
QUICK_SCALE = {"scale_big_chat": 400, "scale_chats": 3, "scale_chat_messages": 40, "scale_add": 40}
QUICK_GROUPS, QUICK_GROUPS_SECONDS = 2, 10  # one mention interval: each group asks once
EXIT_USAGE = 2


async def run_bench(settings: Settings, args: argparse.Namespace) -> int:
    from bench.support import locomo
    from bench.synthetic_archive import ArchiveMismatch, discard_archives
    from bench.harness import BenchOptions

    if args.locomo is not None and not args.locomo.is_file():
        print(f"goat: no such LoCoMo file: {args.locomo}", file=sys.stderr)
        return EXIT_USAGE
    encoders = args.encoders or (settings.embeddings.model,)
    for encoder in encoders:
        # Loaded again, as the process would load them with this encoder (its own ratios).
        with_encoder = load_settings(args.config, environ={**os.environ, "GOAT_EMBEDDINGS__MODEL": encoder})
        options = BenchOptions(
            settings=with_encoder,
            out=args.out / encoder if len(encoders) > 1 else args.out,
            sizes=args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES),
            turns=args.turns or (QUICK_TURNS if args.quick else DEFAULT_TURNS),
            import_turns=args.import_turns or (QUICK_IMPORT_TURNS if args.quick else DEFAULT_IMPORT_TURNS),
            checkpoint_turns=args.checkpoint_turns or (
                QUICK_CHECKPOINT_TURNS if args.quick else DEFAULT_CHECKPOINT_TURNS),
            locomo_path=args.locomo or locomo.data_path()[0],
            bilingual=args.bilingual,
            load_chats=args.load_chats or (QUICK_LOAD_CHATS if args.quick else DEFAULT_LOAD_CHATS),
            load_chat_turns=args.load_chat_turns or (QUICK_LOAD_CHAT_TURNS if args.quick else DEFAULT_LOAD_CHAT_TURNS),
            load_big_chat=(args.load_big_chat if args.load_big_chat is not None
                           else QUICK_LOAD_BIG_CHAT if args.quick else DEFAULT_LOAD_BIG_CHAT),
            **({"groups": QUICK_GROUPS, "groups_seconds": QUICK_GROUPS_SECONDS, **QUICK_SCALE} if args.quick else {}),
            **{name: value for name in ("scale_big_chat", "scale_chats", "scale_chat_messages", "scale_add",
                                                "scale_chroma")
               if (value := getattr(args, name, None)) is not None},
        )
        print(f"\n# encoder {encoder}\n\nLoCoMo data: {options.locomo_path}; benchmark data under {options.root}",
              flush=True)
        if args.rebuild:
            discard_archives(options.root, options.sizes, encoder)
        try:
            if args.build_only:
                await build_archives(options)
            else:
                await run_sections(options, args.sections)
        except ArchiveMismatch as exc:
            print(f"goat: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return 0


async def run_sections(options: BenchOptions, names: tuple[str, ...]) -> None:
    from bench.harness import HostState
    from bench.report import write_json

    for name in names:
        section = importlib.import_module(SECTIONS[name])
        print(f"\n## {name}\n", flush=True)
        before = HostState.now()
        result = await section.run(options)
        host = result.data["conditions"]["host"] = before.until(HostState.now())
        stolen = "n/a" if host["cpu_stolen_share"] is None else f"{host['cpu_stolen_share']:.1%}"
        print("host: reference workload {} → {} ms, CPU stolen by the hypervisor {}\n".format(
            *host["reference_workload_ms"], stolen), flush=True)
        for table in result.tables:
            print(table + "\n", flush=True)
        written = [write_json(options.out, result), *result.figures]
        print("wrote " + ", ".join(str(path) for path in written), flush=True)


async def build_archives(options: BenchOptions) -> None:
    from bench.synthetic_archive import TextPool, ensure_archive

    for bilingual in (False, True) if options.bilingual else (False,):
        pool = TextPool(options.locomo_records, bilingual=bilingual)
        for size in options.sizes:
            archive = await ensure_archive(options.settings, options.root, size, pool)
            print(f"archive of {size} turns ready in {archive.folder} ({len(archive.plans)} chats)")
