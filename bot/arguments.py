"""Argument types shared by the `goat` subcommands, and `goat bench`'s options."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from memory.settings import ENCODERS


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= sys.maxsize:  # a count the process can hold (a deque's length, a slice)
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r:.40}")
    return value


def port_number(text: str) -> int:
    """A TCP port to listen on: 1-65535."""
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number (1-65535), got {text!r:.40}")
    return value


def _names_from(known: Iterable[str], kind: str) -> Callable[[str], tuple[str, ...]]:
    """An argument type: comma-separated names, each one of ``known`` (a ``kind``), in order, once."""
    choices = tuple(known)

    def names(text: str) -> tuple[str, ...]:
        chosen = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
        unknown = [name for name in chosen if name not in choices]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(
                f"unknown {kind}(s) {', '.join(unknown) or '(none given)'}; choose from {','.join(choices)}")
        return chosen

    return names


def _listed(sizes: tuple[int, ...]) -> str:
    return ",".join(map(str, sizes))


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated turn counts like 1000,10000, got {text!r}"
        ) from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"archive sizes must be positive, got {text!r}")
    return sizes


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """`goat bench`'s options (the benchmarks are imported here, only for that command)."""
    from bench.cli import (DEFAULT_CHECKPOINT_TURNS, DEFAULT_IMPORT_TURNS, DEFAULT_SIZES, DEFAULT_TURNS,
                           QUICK_SIZES, SECTIONS)

    parser.add_argument("--sections", type=_names_from(SECTIONS, "section"), default=tuple(SECTIONS),
                        help=f"comma-separated, from {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--sizes", type=_sizes,
                        help=f"archive sizes in turns, e.g. 1000,10000 (default {_listed(DEFAULT_SIZES)}; "
                             f"--quick: {_listed(QUICK_SIZES)})")
    parser.add_argument("--turns", type=positive_int,
                        help=f"measured turns per archive size, chat and message kind (default {DEFAULT_TURNS})")
    parser.add_argument("--import-turns", type=positive_int,
                        help=f"turns the import section imports (default {DEFAULT_IMPORT_TURNS})")
    parser.add_argument("--checkpoint-turns", type=positive_int,
                        help=f"turns of the chat whose checkpoints are measured (default {DEFAULT_CHECKPOINT_TURNS})")
    parser.add_argument("--locomo", type=Path,
                        help="a LoCoMo JSON file (default: $GOAT_LOCOMO, else ../shared/data/locomo-dev.json)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"),
                        help="folder for <section>.json and the plots (default: bench-results)")
    parser.add_argument("--encoders", type=_names_from(ENCODERS, "encoder"), default=None, metavar="NAMES",
                        help="run every section with each of these encoders, one after the other "
                        f"(comma-separated: {','.join(ENCODERS)}; default: embeddings.model)")
    parser.add_argument("--bilingual", action="store_true",
                        help="overhead: also measure archives of bilingual chats (every tenth turn in Russian "
                             "or Spanish), built and cached beside the English ones")
    parser.add_argument("--quick", action="store_true", help="tiny archive and counts: a smoke run")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached archives under <data_dir>/bench")
    parser.add_argument("--build-only", action="store_true",
                        help="only build (or finish building) the archives of --sizes, then stop")
