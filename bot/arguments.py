"""`goat`'s command line: its subcommands and their arguments, the argument types they share,
and `goat bench`'s options (read by the benchmarks' own parser)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from memory.settings import ENCODERS
from memory.turns import MAX_MESSAGE_CHARS

IMPORT_FORMATS = ("jsonl", "telegram", "chatgpt")  # graph.importing.exports reads them (loaded only to import)
BENCH = "measure memory: turn overhead, deadline, import speed, LoCoMo recall"
# bench/ is not in the package: `make setup` makes it importable in a clone's environment.
NO_BENCH = ("goat bench is a developer's tool, not in the package: run it from a clone of GOAT's repository, "
            "set up there with `make setup`")
IMPORT_FORMAT = f"""\
FILE is a Telegram Desktop export (result.json: one chat, or the whole account), a ChatGPT
export (conversations.json), either as the zip it came in, or GOAT's own JSON Lines: the format
is told by the content (or --format). JSON Lines holds one JSON object a line, e.g.
  {{"chat_id": "family", "user_id": "ana", "role": "user", "content": "Mum's birthday is on 24 January.", "timestamp": "2026-01-06T18:45:00Z"}}
  {{"chat_id": "family", "user_id": "ana", "role": "assistant", "content": "Noted: 24 January.", "timestamp": 1767725130}}
fields:
  chat_id    the chat (a string)
  user_id    who wrote it (a string; optional, default: the chat id)
  name       their display name (a string; optional)
  role       "user" or "assistant"
  content    the text (UTF-8, not empty, at most {MAX_MESSAGE_CHARS} characters)
  timestamp  ISO-8601 (without a zone: UTC) or unix seconds (a number, or one in a string), in the
             years 1970-2200
A user message and the assistant message after it, in one chat, make one turn; any other
message is a turn alone. Blank lines are ignored; a UTF-8 byte-order mark is fine.
Telegram: each chat under its id as the Bot API gives it (a group's -id, a supergroup's
-100…; a chat with a bot under yours); each sender is a person of their own (their id and
name), only a bot's lines (the other side of a chat with a bot in the export) the assistant's;
service messages are left out, media become [photo], [voice message]… before the caption. ChatGPT: each conversation's branch in view, its user and assistant messages."""


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


def _non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else positive_int(text)


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


def _override(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):  # not JSON (or nested past reading): the text itself
        value = raw
    return key.strip(), value


def _sentence(what: str) -> str:
    """A command's one-line help as the sentence its --help begins with."""
    return f"{what[0].upper()}{what[1:]}."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="goat", description="A chat agent with proactive layered memory.")
    parser.add_argument("--config", help="settings file (default: $GOAT_CONFIG or ./goat.toml)")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, what: str, **options: Any) -> argparse.ArgumentParser:
        """A subcommand, ``what`` it does its line in `goat --help`; its own --help begins with its
        description, or that line."""
        options.setdefault("description", _sentence(what))
        return commands.add_parser(name, help=what, **options)

    _add_import_arguments(command(
        "import", "bulk-load a transcript, a Telegram or a ChatGPT export into L2 and L3",
        description="Bulk-load a transcript into memory as live turns are written: each chat's messages into\n"
                    "its L2, each exchange into its L3. Importing a file again (or grown) adds only what is new.",
        epilog=IMPORT_FORMAT, formatter_class=argparse.RawDescriptionHelpFormatter))

    _add_inspect_arguments(command("inspect", "show what memory would inject for a message (no model call)"))

    command("doctor", "check every backend and say how to fix what is missing",
            description="Check every backend GOAT uses (the encoder, Redis, Chroma, the facts store, the model "
            "and the Telegram Bot API when configured), each asked for real, and say how to fix what fails. "
            "Exit status 1 when a check fails.")

    demo = command("demo", "load a bundled conversation and show proactive memory at work")
    demo.add_argument("--json", action="store_true", help="print JSON instead of a table")

    # its options, --help included, are parsed by the benchmarks' own parser: see parse_arguments
    command("bench", BENCH, add_help=False)

    chat = command(
        "chat", "talk to GOAT in the terminal (one message per line from a pipe)",
        description="Talk to GOAT in the terminal, through the same graph as the Telegram bot: at a terminal the "
        "reply streams as it is written (Ctrl-C cancels it; at the prompt, leaves); from a pipe, one message a "
        "line and one reply a line. /help lists the memory commands. Needs a model (GOAT_MODEL, OPENAI_API_KEY).")
    chat.add_argument("--chat", default="terminal", help="chat id (default: terminal)")
    chat.add_argument("--user", help="user id (default: the chat id)")

    telegram = command("bot", "run the Telegram bot (long polling, or a webhook server)")
    telegram.add_argument("--webhook", metavar="URL",
                          help="serve a webhook at this public https URL instead of polling (its path is served)")
    telegram.add_argument("--listen", default="127.0.0.1", help="with --webhook: the address to listen on")
    telegram.add_argument("--port", type=port_number, default=8443, help="with --webhook: the port (default 8443)")

    _add_mcp_arguments(command("mcp", "serve this chat's memory to any agent over MCP (stdio, or HTTP)"))

    web = command("web", "a local page to see and correct what GOAT remembers (no network needed)",
                  description="Serve a local page to see and correct what GOAT remembers: chats, turns, what recall "
                  "injects and why, facts, forgetting, import and export. Without GOAT_SERVER_TOKENS it prints a link "
                  "that opens once; with them, each person signs in with their token and sees only their own.")
    web.add_argument("--port", type=port_number, default=8790, help="the port (default 8790)")
    web.add_argument("--listen", default="127.0.0.1",
                     help="the address to listen on (default 127.0.0.1; another only with GOAT_SERVER_TOKENS)")

    export = command("export", "everything of a user as one JSON document (facts, L2, L3)")
    export.add_argument("--user", required=True, help="the user id")
    export.add_argument("--chat", help="only this chat")

    forget = command("forget-user", "delete everything of a user: facts, their chats, their part of shared ones")
    forget.add_argument("user", help="the user id")
    forget.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    command(
        "reembed", "re-embed the archive with embeddings.model (after changing the encoder); resumable",
        description="Compute every L3 entry's vector again with the encoder embeddings.model names "
        "(GOAT_EMBEDDINGS__MODEL), in place: Chroma and the word index's vectors. Stop GOAT's other "
        "processes first; none starts until it has finished. Killed, it resumes where it was when run again.")

    stats = command(
        "stats", "latency percentiles and memory figures of the recent turns",
        description="Latency percentiles per node and memory figures (prefetch mechanisms, cache hits, tokens) "
        "of the recent turns, from the turn log in <data_dir>/logs.")
    stats.add_argument("--last", type=positive_int, default=1000, metavar="N", help="how many turns (default 1000)")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _add_import_arguments(importer: argparse.ArgumentParser) -> None:
    """`goat import`'s arguments: the file, and how its messages are read."""
    importer.add_argument("file", type=Path, metavar="FILE",
                          help="the transcript or export (below)")
    importer.add_argument("--skip-invalid", action="store_true",
                          help="import the valid lines (messages) and list the others (default: an invalid one stops "
                               "the import before anything is written)")
    importer.add_argument("--format", choices=IMPORT_FORMATS, help="the file's format (default: told by its content)")
    importer.add_argument("--me", metavar="ID",
                          help="Telegram: your user id, whose chat with a bot it is (default: the exporting "
                               "account's); ChatGPT: the user id to keep your messages under (default: the chat id)")
    importer.add_argument("--into", metavar="CHAT", help="import every chat or conversation into this one chat")


def _add_mcp_arguments(mcp: argparse.ArgumentParser) -> None:
    """`goat mcp`'s arguments: whose memory is served, and over what."""
    mcp.add_argument("--chat", required=True, help="the chat whose memory is served (fixed for the server's life)")
    mcp.add_argument("--user", help="the user whose facts are served (default: the chat id)")
    mcp.add_argument("--http", action="store_true",
                     help="serve streamable HTTP at /mcp instead of stdio (needs GOAT_MCP_TOKEN)")
    mcp.add_argument("--host", default="127.0.0.1", help="with --http: the address to listen on (default 127.0.0.1)")
    mcp.add_argument("--port", type=port_number, default=8765, help="with --http: the port (default 8765)")


def _add_inspect_arguments(inspect: argparse.ArgumentParser) -> None:
    """`goat inspect`'s arguments: the messages, whose memory, and settings for this run."""
    inspect.add_argument("message", nargs="?", help="the message (or use --queries)")
    inspect.add_argument("--chat", required=True, help="chat id")
    inspect.add_argument("--user", help="user id (default: the chat id)")
    inspect.add_argument("--queries", type=Path, help="file with one message per line; one JSON object per line out")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a table")
    inspect.add_argument("--whole-turns", action="store_true",
                         help="show the whole turn each excerpt was cut from (JSON: its \"turn\")")
    inspect.add_argument("--set", dest="overrides", action="append", type=_override, default=[],
                         metavar="KEY=VALUE", help="override a setting for this run, e.g. prefetch.timeout=0.3")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """`goat`'s arguments; the benchmarks are imported only when the command is `bench`."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command != "bench":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args

    bench = argparse.ArgumentParser(prog="goat bench", description=_sentence(BENCH))
    try:
        add_bench_arguments(bench)
    except ModuleNotFoundError as missing:
        if missing.name != "bench":
            raise
        parser.error(NO_BENCH)
    return bench.parse_args(rest, namespace=args)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """`goat bench`'s options (the benchmarks are imported here, only for that command)."""
    from bench.cli import (DEFAULT_CHECKPOINT_TURNS, DEFAULT_IMPORT_TURNS, DEFAULT_LOAD_BIG_CHAT, DEFAULT_LOAD_CHATS,
                           DEFAULT_LOAD_CHAT_TURNS, DEFAULT_SIZES, DEFAULT_TURNS, QUICK_LOAD_CHATS, QUICK_SIZES, SECTIONS)

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
    parser.add_argument("--load-chats", type=_sizes,
                        help=f"load: how many chats speak at once, e.g. 1,10,40 (default {_listed(DEFAULT_LOAD_CHATS)}; "
                             f"--quick: {_listed(QUICK_LOAD_CHATS)})")
    parser.add_argument("--load-chat-turns", type=positive_int,
                        help=f"load: turns each of those chats holds (default {DEFAULT_LOAD_CHAT_TURNS})")
    parser.add_argument("--load-big-chat", type=_non_negative_int, metavar="TURNS",
                        help=f"load: turns of a big chat, the first of every burst's chats; 0: none (default "
                             f"{DEFAULT_LOAD_BIG_CHAT}; --quick: 0)")
    parser.add_argument("--scale-big-chat", type=positive_int, metavar="MESSAGES",
                        help="scale: messages of the big chat (default 1000000; --quick: 400)")
    parser.add_argument("--scale-chats", type=_non_negative_int, metavar="CHATS",
                        help="scale: chats beside the big one (default 1000; --quick: 3)")
    parser.add_argument("--scale-chat-messages", type=positive_int, metavar="MESSAGES",
                        help="scale: messages of each of those chats (default 1000; --quick: 40)")
    parser.add_argument("--scale-add", type=_non_negative_int, metavar="MESSAGES",
                        help="scale: messages then added to the big chat (default 100000; --quick: 40)")
    parser.add_argument("--scale-chroma", choices=("embedded", "server"),
                        help="scale: Chroma in the serving process (default), or a `chroma run` server beside it")
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
