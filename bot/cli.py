"""The `goat` command: chat, import, inspect, stats, doctor, demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from typing import TYPE_CHECKING

from bot.arguments import parse_arguments
from bot.report import render_check, render_report
from bot.signals import StoppedBySigterm, stop_requests, stopped_by_sigterm
from graph.observability.redaction import RedactingFilter, Redactor
from graph.replies import CHAT_OF_OTHERS, MEMORY_UNREACHABLE
from graph.settings import Settings, load_settings, load_settings_leaving_out_invalid
from memory.settings import SettingsError
from nodes.state import InvalidTurn
from memory.disk_failures import disk_unwritable

if TYPE_CHECKING:  # imported where they are used: the commands that need no graph start faster
    from graph.observability.why_report import TurnReport
    from graph.runner import TurnRunner

EXIT_USAGE = 2
EXIT_STOPPED = 130  # as a shell reports a command Ctrl-C ended
# The commands that serve until they are stopped: SIGTERM, a service manager's stop, is their
# normal end, a success (exit 0). Any other command it stops was cut short: EXIT_STOPPED.
SERVING = frozenset({"bot", "mcp", "web"})


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
                   "reembed": cmd_reembed, "web": cmd_web}
        return asyncio.run(stopped_by_sigterm(handler[args.command](settings, args)))
    except (SettingsError, InvalidTurn) as exc:
        print(f"goat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MEMORY_UNREACHABLE as exc:
        print(f"goat: {disk_unwritable(exc, settings) or exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `goat inspect … | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1
    except StoppedBySigterm:
        return 0 if args.command in SERVING else EXIT_STOPPED
    except KeyboardInterrupt:
        return EXIT_STOPPED
    except Exception as exc:
        if (unwritable := disk_unwritable(exc, settings)) is None:
            raise
        print(f"goat: {unwritable}", file=sys.stderr)
        return 1


async def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from graph.importing.export_files import ExportError
    from graph.importing.exports import read_export
    from graph.importing.importer import ImportStopped, TranscriptChanged, TranscriptError, import_turns
    from graph.checkpoint import CheckpointedServices
    from memory.turns import Standing

    if not args.file.exists():  # a folder is read for the export it holds
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
        async with CheckpointedServices(settings) as services:
            # --into is the operator's choice of the chat: it goes there whoever is in it.
            standing = Standing.IMPORTED if args.into is None else Standing.VOUCHED
            if standing is Standing.IMPORTED:
                await services.memory.entries.check_import(transcript.people)
            with stop_requests() as stopped:
                with tqdm(total=transcript.turns, unit="turn", desc=f"importing {args.file.name}",
                          file=sys.stderr) as bar:
                    stats = await import_turns(services.memory, transcript, bar.update, stopped, standing)
                with tqdm(unit="entry", desc="e5's block for English lines of chats in other languages too",
                          file=sys.stderr, delay=0.5) as bar:
                    await services.memory.admin.fill_languages(bar.update, stopped)
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
    except CHAT_OF_OTHERS as exc:
        print(f"goat: {args.file}: {exc}, so it is not imported there: --into CHAT imports it into a chat "
              f"of your choosing (--into {exc.chat_id}: into that one all the same)", file=sys.stderr)
        return EXIT_USAGE
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
    from graph.runner import TurnRunner
    from graph.observability.why_report import turn_report

    if args.queries:
        if not args.queries.is_file():
            print(f"goat: {'a folder, not a file' if args.queries.is_dir() else 'no such file'}: {args.queries}",
                  file=sys.stderr)
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
            if args.whole_turns:
                await _with_whole_turns(runner, args.chat, report)
            print(json.dumps(report, ensure_ascii=False) if as_json else render_report(report), flush=True)
    return 0


async def _with_whole_turns(runner: TurnRunner, chat_id: str, report: TurnReport) -> None:
    """Each excerpt of the report given the whole turn it was cut from (``turn``)."""
    cut = [entry["id"] for entry in report["l3"] if entry["excerpt"]]
    found = await runner.services.memory.entries.of_ids(chat_id, cut) if cut else []
    whole = {hit["id"]: hit["content"] for hit in found}
    for entry in report["l3"]:
        if entry["id"] in whole:
            entry["turn"] = whole[entry["id"]]


async def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    from bot.doctor import (Check, backend_fix, backend_mode, check_data_folder, check_model, check_telegram,
                            invalid_sections, unchecked_backends)
    from graph.checkpoint import CheckpointedServices
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
    if "data_dir" not in invalid:
        report(check_data_folder(settings))
    async with CheckpointedServices(settings) as services:
        for backend in (await services.memory.admin.health(unchecked=unchecked_backends(invalid, settings))).backends:
            report(Check("ok" if backend.ok else "FAIL", f"{backend.name}: {backend_mode(backend.name, settings)} — {backend.detail}",
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
    from graph.observability.stats import render_stats, summarize
    from graph.observability.turn_log import TurnLog, turns_log_path

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
    from bot.mcp_server import MemoryServer, bearer_only, build_server, json_bounded
    from graph.runner import TurnRunner

    token = settings.mcp.token.get_secret_value() if settings.mcp.token else ""
    if args.http and not token:
        print("goat: `goat mcp --http` serves only with a bearer token: set GOAT_MCP_TOKEN (e.g. to the "
              "output of `openssl rand -hex 32`) and give clients `Authorization: Bearer <token>`", file=sys.stderr)
        return EXIT_USAGE
    async with TurnRunner.from_settings(settings) as runner:
        await runner.warm_up()
        memory_server = MemoryServer(runner, args.chat, args.user or args.chat)
        server = build_server(memory_server)
        try:
            if not args.http:
                await server.run_stdio_async()
                return 0
            import uvicorn

            app = bearer_only(json_bounded(server.streamable_http_app(host=args.host)), token)
            print(f"goat mcp: serving chat {args.chat} at http://{args.host}:{args.port}/mcp", file=sys.stderr,
                  flush=True)
            await uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")).serve()
        finally:
            await memory_server.aclose()
    return 0


async def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from bot.web.serve import serve_web

    return await serve_web(settings, args.listen, args.port)


async def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from graph.checkpoint import CheckpointedServices

    async with CheckpointedServices(settings) as services:
        document = await services.memory.admin.export(args.user, args.chat)
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

    from graph.checkpoint import CheckpointedServices

    async with CheckpointedServices(settings) as services:
        # Shown once it has run a second: a re-embedding with nothing to do draws no empty bar.
        with tqdm(unit="entry", desc=f"re-embedding with {settings.embeddings.model}", file=sys.stderr,
                  delay=1) as bar:
            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            done = await services.memory.admin.reembed(progress)
    if not done.chats and done.previous in (None, done.encoder):
        print(f"the archive is already embedded with {done.encoder}: nothing to do")
    else:
        was = "" if done.previous is None else f" (was {done.previous})"
        if done.previous == done.encoder:  # the same model, its vectors made by an older version
            was = " (its vectors were an older version's)"
        print(f"re-embedded {done.entries} entries of {done.chats} chat(s) with {done.encoder}{was}")
    return 0


async def cmd_bot(settings: Settings, args: argparse.Namespace) -> int:
    from bot.doctor import missing_model

    missing = [] if settings.telegram.token else [
        "no Telegram bot token: create a bot with @BotFather in Telegram (/newbot) and set TELEGRAM_BOT_TOKEN to "
        "the token it gives you"]
    if problem := missing_model(settings.llm):  # else it would start and answer everyone with an apology
        missing.append(f"the bot needs a model: {problem}")
    if missing:  # each named at once: a newcomer fixes both before trying again
        print("\n".join(f"goat: {line}" for line in missing), file=sys.stderr)
        return EXIT_USAGE
    from graph.runner import TurnRunner
    from bot.telegram import build_application
    from bot.telegram_running import serve

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
