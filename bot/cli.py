"""The `goat` command: chat, import, inspect, stats, doctor, demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from bot.arguments import add_bench_arguments, port_number, positive_int
from bot.report import render_check, render_report
from bot.signals import stop_requests, stopped_by_sigterm
from graph.observability import RedactingFilter, Redactor
from memory.settings import Settings, SettingsError, load_settings, load_settings_leaving_out_invalid
from nodes.state import MAX_MESSAGE_CHARS, InvalidTurn
from memory.errors import BackendUnavailable, disk_full

EXIT_USAGE = 2
EXIT_STOPPED = 130  # as a shell reports a command Ctrl-C ended
IMPORT_FORMATS = ("jsonl", "telegram", "chatgpt")  # graph.exports reads them (loaded only to import)
BENCH = "measure memory: turn overhead, deadline, import speed, LoCoMo recall"
IMPORT_FORMAT = f"""\
FILE is a Telegram Desktop export (result.json: one chat, or the whole account), a ChatGPT
export (conversations.json), either as the zip it came in, or GOAT's own JSON Lines: the format
is told by the content (or --format). JSON Lines holds one JSON object a line, e.g.
  {{"chat_id": "family", "user_id": "ana", "role": "user", "content": "Mum's birthday is on 24 January.", "timestamp": "2026-01-06T18:45:00Z"}}
  {{"chat_id": "family", "user_id": "ana", "role": "assistant", "content": "Noted: 24 January.", "timestamp": 1767725130}}
fields:
  chat_id    the chat (a string)
  user_id    who wrote it (a string; optional, default: the chat id)
  role       "user" or "assistant"
  content    the text (UTF-8, not empty, at most {MAX_MESSAGE_CHARS} characters)
  timestamp  ISO-8601 (without a zone: UTC) or unix seconds (a number, or one in a string), in the
             years 1970-2200
A user message and the assistant message after it, in one chat, make one turn; any other
message is a turn alone. Blank lines are ignored; a UTF-8 byte-order mark is fine.
Telegram: each chat under its id as the Bot API gives it (a group's -id, a supergroup's
-100…; a chat with a bot under yours); your messages are the user's, everyone else's the
assistant's; service messages are left out, media become [photo], [voice message]… before
the caption. ChatGPT: each conversation's branch in view, its user and assistant messages."""


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

    importer = command(
        "import", "bulk-load a transcript, a Telegram or a ChatGPT export into L2 and L3",
        description="Bulk-load a transcript into memory as live turns are written: each chat's messages into\n"
                    "its L2, each exchange into its L3. Importing a file again (or grown) adds only what is new.",
        epilog=IMPORT_FORMAT, formatter_class=argparse.RawDescriptionHelpFormatter)
    importer.add_argument("file", type=Path, metavar="FILE",
                          help="the transcript or export (below)")
    importer.add_argument("--skip-invalid", action="store_true",
                          help="import the valid lines (messages) and list the others (default: an invalid one stops "
                               "the import before anything is written)")
    importer.add_argument("--format", choices=IMPORT_FORMATS, help="the file's format (default: told by its content)")
    importer.add_argument("--me", metavar="ID",
                          help="Telegram: your user id, whose messages are the user's (default: the exporting "
                               "account's); ChatGPT: the user id to keep your messages under (default: the chat id)")
    importer.add_argument("--into", metavar="CHAT", help="import every chat or conversation into this one chat")

    inspect = command("inspect", "show what memory would inject for a message (no model call)")
    inspect.add_argument("message", nargs="?", help="the message (or use --queries)")
    inspect.add_argument("--chat", required=True, help="chat id")
    inspect.add_argument("--user", help="user id (default: the chat id)")
    inspect.add_argument("--queries", type=Path, help="file with one message per line; one JSON object per line out")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a table")
    inspect.add_argument("--set", dest="overrides", action="append", type=_override, default=[],
                         metavar="KEY=VALUE", help="override a setting for this run, e.g. prefetch.timeout=0.3")

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

    mcp = command("mcp", "serve this chat's memory to any agent over MCP (stdio, or HTTP)")
    mcp.add_argument("--chat", required=True, help="the chat whose memory is served (fixed for the server's life)")
    mcp.add_argument("--user", help="the user whose facts are served (default: the chat id)")
    mcp.add_argument("--http", action="store_true",
                     help="serve streamable HTTP at /mcp instead of stdio (needs GOAT_MCP_TOKEN)")
    mcp.add_argument("--host", default="127.0.0.1", help="with --http: the address to listen on (default 127.0.0.1)")
    mcp.add_argument("--port", type=port_number, default=8765, help="with --http: the port (default 8765)")

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


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """`goat`'s arguments; the benchmarks are imported only when the command is `bench`."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command != "bench":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args

    bench = argparse.ArgumentParser(prog="goat bench", description=_sentence(BENCH))
    add_bench_arguments(bench)
    return bench.parse_args(rest, namespace=args)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "doctor":  # it reports invalid settings among its checks, and goes on
            settings, args.invalid_settings = load_settings_leaving_out_invalid(args.config)
        else:
            settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"goat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        for log_handler in logging.getLogger().handlers:
            log_handler.addFilter(RedactingFilter(Redactor.for_settings(settings)))
        handler = {"import": cmd_import, "inspect": cmd_inspect, "doctor": cmd_doctor, "demo": cmd_demo,
                   "bench": cmd_bench, "chat": cmd_chat, "stats": cmd_stats, "mcp": cmd_mcp,
                   "export": cmd_export, "forget-user": cmd_forget_user, "bot": cmd_bot,
                   "reembed": cmd_reembed}
        return asyncio.run(stopped_by_sigterm(handler[args.command](settings, args)))
    except (SettingsError, InvalidTurn) as exc:
        print(f"goat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackendUnavailable as exc:
        print(f"goat: {disk_full(exc, settings) or exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `goat inspect … | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1
    except KeyboardInterrupt:
        return EXIT_STOPPED
    except Exception as exc:
        if (full := disk_full(exc, settings)) is None:
            raise
        print(f"goat: {full}", file=sys.stderr)
        return 1


async def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from graph.exports import ExportError, read_export
    from graph.importer import ImportStopped, TranscriptChanged, TranscriptError, import_turns
    from nodes.services import Services

    if not args.file.is_file():
        print(f"goat: no such file: {args.file}", file=sys.stderr)
        return EXIT_USAGE
    try:  # every message checked first: a malformed file is rejected before any backend starts
        with stop_requests() as stopped:
            transcript = read_export(args.file, args.format, me=args.me, into=args.into,
                                     skip_invalid=args.skip_invalid, stopped=stopped)
    except TranscriptError as exc:
        print(f"goat: {args.file}: {exc}; nothing was written (--skip-invalid imports the valid {exc.unit}s)",
              file=sys.stderr)
        return EXIT_USAGE
    except (ExportError, InvalidTurn) as exc:  # InvalidTurn: --into names no chat GOAT can keep
        print(f"goat: {args.file}: {exc}; nothing was written", file=sys.stderr)
        return EXIT_USAGE
    except ImportStopped:
        print("goat: stopped while the file was being checked; nothing was written", file=sys.stderr)
        return EXIT_STOPPED
    try:
        async with Services(settings) as services:
            with stop_requests() as stopped:
                with tqdm(total=transcript.turns, unit="turn", desc=f"importing {args.file.name}",
                          file=sys.stderr) as bar:
                    stats = await import_turns(services.memory, transcript, progress=bar.update, stopped=stopped)
                with tqdm(unit="entry", desc="e5's block for English lines of chats in other languages too",
                          file=sys.stderr, delay=0.5) as bar:
                    await services.memory.fill_languages(bar.update, stopped)
                if stopped():
                    print("goat: stopped; e5's block for the rest of those English lines is added behind the "
                          "turns of `goat bot` or `goat chat`, or by the next import", file=sys.stderr)
    except ImportStopped as stop:
        print(f"goat: stopped: {stop.imported} turn(s) imported, {stop.skipped} already there, of "
              f"{transcript.turns}; what was written is whole: run the same command again to import the rest",
              file=sys.stderr)
        return EXIT_STOPPED
    except TranscriptChanged as exc:
        print(f"goat: {args.file}: {exc}; the turns before it were imported: run the import again",
              file=sys.stderr)
        return 1
    print(
        f"{stats['messages']} messages, {stats['turns']} turns: "
        f"{stats['imported']} imported, {stats['skipped']} already there"
    )
    if transcript.omitted:
        print("left out: " + ", ".join(f"{count} {kind}{'' if count == 1 else 's'}"
                                       for kind, count in transcript.omitted.items()))
    if transcript.skipped:
        print(f"skipped {len(transcript.skipped)} invalid {transcript.unit}(s):")
        for refusal in transcript.skipped:
            print(f"  {refusal}")
    return 0


async def cmd_inspect(settings: Settings, args: argparse.Namespace) -> int:
    from graph.runner import TurnRunner, turn_report

    if args.queries:
        if not args.queries.is_file():
            print(f"goat: no such file: {args.queries}", file=sys.stderr)
            return EXIT_USAGE
        # As goat import and goat chat read: bytes that are not UTF-8 become U+FFFD, not a traceback.
        messages = [q for q in args.queries.read_text(encoding="utf-8", errors="replace").splitlines() if q.strip()]
    elif args.message is not None:
        # Bytes of the argument that are not UTF-8 (Python keeps them as lone surrogates) become U+FFFD too.
        messages = [os.fsencode(args.message).decode("utf-8", errors="replace")]
    else:
        print("goat: give a message or --queries FILE", file=sys.stderr)
        return EXIT_USAGE
    as_json = args.json or args.queries is not None  # --queries is one JSON object per line
    overrides = dict(args.overrides)
    settings.with_overrides(overrides, origin="--set")  # fail before any work if an override is bad
    async with TurnRunner.from_settings(settings) as runner:
        await runner.warm_up()
        for message in messages:
            state = await runner.inspect(args.chat, message, user_id=args.user, overrides=overrides)
            report = turn_report(state)
            print(json.dumps(report, ensure_ascii=False) if as_json else render_report(report), flush=True)
    return 0


async def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    from bot.doctor import (Check, backend_fix, check_data_folder, check_model, check_telegram, invalid_sections,
                            unchecked_backends)
    from nodes.services import Services
    from memory.encoders import encoder_files

    redact = Redactor.for_settings(settings)  # an endpoint's error may quote the key or the token
    failed = False

    def report(check: Check) -> None:
        nonlocal failed
        failed |= check.failed
        print(redact(render_check(check.status, check.text, check.fix)), flush=True)

    invalid = invalid_sections(args.invalid_settings)
    if args.invalid_settings:
        report(Check("FAIL", f"settings: {args.invalid_settings}",
                     "correct it: what depends on it is not checked until then"))
    if "embeddings" not in invalid:
        try:
            model = settings.embeddings.model
            report(Check("ok", f"embeddings: {model} (onnxruntime, offline) from "
                               f"{', '.join(map(str, encoder_files(model)))}"))
        except RuntimeError as exc:
            report(Check("FAIL", f"embeddings: {exc}"))
    report(check_data_folder(settings))
    async with Services(settings) as services:
        for backend in (await services.memory.health(unchecked=unchecked_backends(invalid))).backends:
            report(Check("ok" if backend.ok else "FAIL", f"{backend.name}: {backend.mode} — {backend.detail}",
                         None if backend.ok else backend_fix(backend, settings)))
    if "llm" not in invalid:
        report(await check_model(settings.llm))
    if settings.telegram.token and "telegram" not in invalid:
        report(await check_telegram(settings.telegram.api_url, settings.telegram.token.get_secret_value()))
    return 1 if failed else 0


async def cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    from bot.chat import run_chat
    from bot.doctor import missing_model

    if problem := missing_model(settings.llm):  # else it would say "ready", then fail every message
        print(f"goat: the chat needs a model: {problem} (without one, `goat inspect`, `goat export` and "
              "`goat mcp` reach the memory)", file=sys.stderr)
        return EXIT_USAGE
    return await run_chat(settings, args.chat, args.user)


async def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    from graph.observability import TurnLog, render_stats, summarize, turns_log_path

    path = turns_log_path(settings)
    summary = summarize(TurnLog(path, settings.observability.log_max_bytes).tail(args.last))
    print(json.dumps(summary, ensure_ascii=False) if args.json else render_stats(summary, path))
    return 0


async def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from bench.cli import run_bench

    return await run_bench(settings, args)


async def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from bot.demo.run import run_demo

    return await run_demo(settings, as_json=args.json)



async def cmd_mcp(settings: Settings, args: argparse.Namespace) -> int:
    from bot.mcp_server import MemoryServer, bearer_only, build_server
    from graph.runner import TurnRunner

    token = settings.mcp.token.get_secret_value() if settings.mcp.token else ""
    if args.http and not token:
        print("goat: `goat mcp --http` serves only with a bearer token: set GOAT_MCP_TOKEN (e.g. to the "
              "output of `openssl rand -hex 32`) and give clients `Authorization: Bearer <token>`", file=sys.stderr)
        return EXIT_USAGE
    async with TurnRunner.from_settings(settings) as runner:
        await runner.warm_up()
        server = build_server(MemoryServer(runner, args.chat, args.user or args.chat))
        if not args.http:
            await server.run_stdio_async()
            return 0
        import uvicorn

        app = bearer_only(server.streamable_http_app(host=args.host), token)
        print(f"goat mcp: serving chat {args.chat} at http://{args.host}:{args.port}/mcp", file=sys.stderr, flush=True)
        await uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")).serve()
    return 0


async def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from nodes.services import Services

    async with Services(settings) as services:
        document = await services.memory.export(args.user, args.chat)
    print(json.dumps(document, ensure_ascii=False, indent=2))
    return 0


async def cmd_forget_user(settings: Settings, args: argparse.Namespace) -> int:
    from graph.runner import TurnRunner

    if not args.yes:
        if not sys.stdin.isatty():
            print("goat: forget-user deletes for good; confirm with --yes", file=sys.stderr)
            return EXIT_USAGE
        typed = input(f"Delete everything of user {args.user} (facts, their chats, their part of shared chats)? "
                      "Type the user id to confirm: ")
        if typed.strip() != args.user:
            print("goat: not confirmed; nothing deleted", file=sys.stderr)
            return 1
    async with TurnRunner.from_settings(settings) as runner:
        forgotten = await runner.forget_user(args.user)
    print(f"forgot user {args.user}: {forgotten.facts} fact(s); {len(forgotten.chats)} chat(s) deleted whole"
          f"{' (' + ', '.join(forgotten.chats) + ')' if forgotten.chats else ''}; from {len(forgotten.shared)} "
          f"shared chat(s), {forgotten.entries} L3 entr(ies) and {forgotten.messages} L2 message(s)")
    return 0


async def cmd_reembed(settings: Settings, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nodes.services import Services

    async with Services(settings) as services:
        with tqdm(unit="entry", desc=f"re-embedding with {settings.embeddings.model}", file=sys.stderr) as bar:
            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            done = await services.memory.reembed(progress)
    if not done.chats and done.previous in (None, done.encoder):
        print(f"the archive is already embedded with {done.encoder}: nothing to do")
    else:
        print(f"re-embedded {done.entries} entries of {done.chats} chat(s) with {done.encoder}"
              f"{f' (was {done.previous})' if done.previous else ''}")
    return 0


async def cmd_bot(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.telegram.token:
        print("goat: no Telegram bot token: create a bot with @BotFather in Telegram (/newbot) and set "
              "TELEGRAM_BOT_TOKEN to the token it gives you", file=sys.stderr)
        return EXIT_USAGE
    from bot.doctor import missing_model
    from graph.runner import TurnRunner
    from bot.telegram import build_application, serve

    if problem := missing_model(settings.llm):  # else it would start and answer everyone with an apology
        print(f"goat: the bot needs a model: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if not settings.telegram.allowed_users:
        print("goat: GOAT_ALLOWED_USERS is empty, so the bot refuses everyone; message it once to learn your "
              "Telegram user id, then set GOAT_ALLOWED_USERS to it", file=sys.stderr)
    async with TurnRunner.from_settings(settings) as runner:
        await runner.warm_up()
        await runner.recover()
        await serve(build_application(runner, settings), settings, webhook=args.webhook, listen=args.listen,
                    port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
