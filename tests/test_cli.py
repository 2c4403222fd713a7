"""The real `goat` console script, run as a subprocess on real backends.

Each command runs with a fresh environment: GOAT_DATA_DIR in a temporary folder and no
OPENAI_*/GOAT_* variable from the outside, so no model is configured and, unless a test
sets GOAT_REDIS_URL / GOAT_CHROMA_URL, the embedded defaults are used.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import chromadb
import pytest
import redis
from chromadb.config import Settings as ChromaSettings

from bench.support.fakes import FakeOpenAI, error_reply
from bench.support.fakes.telegram_server import FakeTelegram
from memory.stores.episodic import collection_name
from memory.stores.redis_server import EmbeddedRedis
from test_graph import HISTORY, history_jsonl
from bench.support.processes import GOAT_SCRIPT as GOAT  # the installed script, run as a user would

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DEMO_QUESTIONS = [q for q in (REPO / "bot/demo/questions.txt").read_text("utf-8").splitlines() if q.strip()]
HANG_GUARD = 300  # seconds; only so that a hung command fails the test instead of the session

CHAT = "alice-chat"
USER = "alice"
ALPHA = "What was the problem with the alpha-5675 deployment?"
TOMATO = "How are my tomato seedlings doing?"
PORTO = "Who is getting married in Porto?"
REPORT_KEYS = {"budget", "confidence", "complexity", "l3", "tokens", "latency_ms", "prefetch"}
L3_ITEM_KEYS = {"id", "content", "distance", "blended_score", "timestamp", "mechanism", "excerpt"}
PRE_LLM_NODES = {"prefetch", "load_identity", "load_working", "gap_filter", "budget", "assemble"}
OPENAI_KEY = "sk-goat-cli-OPENAIKEY-7d3a9e1f"
BOT_TOKEN = "123456789:GOAT-CLI-TOKEN-b5e2c8"
IMPORT_SUMMARY = f"{2 * len(HISTORY)} messages, {len(HISTORY)} turns: {len(HISTORY)} imported, 0 already there"
REIMPORT_SUMMARY = f"{2 * len(HISTORY)} messages, {len(HISTORY)} turns: 0 imported, {len(HISTORY)} already there"


def exchange_id(user_text: str, chat_id: str = CHAT) -> str:
    """The L3 id of the HISTORY exchange whose user message is ``user_text`` (turns follow file order)."""
    turn = 1 + next(n for n, (_, user, _) in enumerate(HISTORY) if user == user_text)
    return f"{chat_id}:turn_{turn:04d}"


ALPHA_FAILED = exchange_id(HISTORY[2][1])  # "The deployment of service alpha-5675 failed again …"
ALPHA_ROLLBACK = exchange_id(HISTORY[3][1])  # "We rolled alpha-5675 back to version 2.3.1 …"
TOMATO_PLANTED = exchange_id(HISTORY[0][1])  # "I planted three San Marzano tomato seedlings …"
CLARA_WEDDING = exchange_id(HISTORY[4][1])  # "My sister Clara is getting married in Porto …"


# ---- running the command -------------------------------------------------------------


def goat_env(data_dir: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "GOAT_", "TQDM_"))}
    env.update(
        GOAT_DATA_DIR=str(data_dir),
        # Generous, so a loaded test machine cannot turn a slow search into a missing result;
        # what happens at the deadline is tested in-process, not here.
        GOAT_PREFETCH__TIMEOUT="10",
        ANONYMIZED_TELEMETRY="False",
    )
    env.update(variables)
    return env


def goat(*args: str | Path, env: dict[str, str], cwd: Path,
         typed: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (not `python -m`), as a user would; ``typed``: the lines
    piped to it (`goat chat`'s messages)."""
    piped = None if typed is None else "".join(f"{line}\n" for line in typed)
    return subprocess.run(
        [str(GOAT), *map(str, args)], env=env, cwd=cwd, input=piped, capture_output=True, text=True,
        timeout=HANG_GUARD,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ok(result).stdout.splitlines()]


def inspect_json(message: str, *, env: dict[str, str], cwd: Path, chat: str = CHAT) -> dict[str, Any]:
    [report] = json_lines(goat("inspect", "--chat", chat, "--json", message, env=env, cwd=cwd))
    return report


def embedded_redis_pids(data_dir: Path) -> list[int]:
    """redis-server processes serving ``data_dir``: redis-server retitles itself to
    `<binary> unixsocket:<socket>`, so its /proc cmdline names the socket under the data folder
    (or, for a long path, the hashed socket in /tmp that EmbeddedRedis derives from it)."""
    socket_path = unquote(urlsplit(EmbeddedRedis(data_dir).url).path)
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:  # exited meanwhile
            continue
        if "redis-server" in cmdline and socket_path in cmdline:
            pids.append(int(proc.name))
    return pids


def servers_left(data_dir: Path) -> list[int]:
    """The pids of redis-servers still serving ``data_dir``, killed so a failing test leaks none."""
    pids = embedded_redis_pids(data_dir)
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


@dataclass(frozen=True)
class Imported:
    data_dir: Path
    cwd: Path
    env: dict[str, str]
    transcript: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imported]:
    """HISTORY imported once by `goat import` on embedded defaults, shared by the read-only tests."""
    root = tmp_path_factory.mktemp("cli-embedded")
    data_dir, cwd = root / "data", root / "cwd"
    cwd.mkdir()
    transcript = cwd / "history.jsonl"
    transcript.write_text(history_jsonl(CHAT, USER), encoding="utf-8")
    env = goat_env(data_dir)
    result = goat("import", transcript.name, env=env, cwd=cwd)
    yield Imported(data_dir, cwd, env, transcript, result)


# ---- import on embedded defaults ---------------------------------------------------------


def test_import_on_embedded_defaults_keeps_data_under_the_data_dir_and_stops_its_server(
    imported: Imported, start_embedded
) -> None:
    result = ok(imported.result)

    assert result.stdout.splitlines() == [IMPORT_SUMMARY]
    # tqdm's bar on stderr, with the turn total known up front
    assert f"importing {imported.transcript.name}" in result.stderr
    assert "100%" in result.stderr and f"{len(HISTORY)}/{len(HISTORY)}" in result.stderr
    assert "Traceback" not in result.stderr
    redis_files = [p for p in (imported.data_dir / "redis").rglob("*") if p.is_file()]
    assert any(p.name.startswith("appendonly") for p in redis_files), redis_files
    assert (imported.data_dir / "chroma" / "chroma.sqlite3").is_file()
    assert servers_left(imported.data_dir) == []  # the command shut its server down

    # The data really is in that folder: a server started on it again finds the chat
    # (and is seen by the process scan, so the check above is not vacuous).
    server = start_embedded(imported.data_dir)
    assert embedded_redis_pids(imported.data_dir) == [server.pid]
    with redis.Redis.from_url(server.url) as client:
        keys = [key.decode() for key in client.keys("goat:*")]
    assert any(CHAT in key for key in keys), keys


# ---- inspect -------------------------------------------------------------------------


def test_inspect_json_reports_the_injected_exchange_and_the_turn(imported: Imported) -> None:
    report = inspect_json(ALPHA, env=imported.env, cwd=imported.cwd)

    assert REPORT_KEYS <= set(report)
    assert report["chat_id"] == CHAT and report["message"] == ALPHA
    assert report["turn"] == len(HISTORY) + 1
    ids = [item["id"] for item in report["l3"]]
    assert ALPHA_FAILED in ids and ALPHA_ROLLBACK in ids
    for item in report["l3"]:
        assert set(item) == L3_ITEM_KEYS
        assert item["mechanism"] in {"thematic", "temporal", "specific_key", "beside"}
        assert isinstance(item["timestamp"], float) and item["distance"] >= 0
    failed = next(item for item in report["l3"] if item["id"] == ALPHA_FAILED)
    assert failed["content"] == f"user: {HISTORY[2][1]}\nassistant: {HISTORY[2][2]}"  # verbatim
    assert failed["mechanism"] == "specific_key"
    scores = [item["blended_score"] for item in report["l3"]]
    assert scores == sorted(scores, reverse=True)  # best first

    assert PRE_LLM_NODES <= set(report["latency_ms"])
    assert "llm" not in report["latency_ms"]  # inspect stops before the model
    assert all(isinstance(v, (int, float)) and v >= 0 for v in report["latency_ms"].values())
    assert set(report["tokens"]) == {"l0_l1", "l2", "l3"}
    assert report["tokens"]["l3"] > 0 and report["tokens"]["l2"] > 0
    prefetch = report["prefetch"]
    assert {"thematic", "specific_key"} <= set(prefetch["fired"])
    assert prefetch["keys"] == ["alpha-5675"]
    assert prefetch["timed_out"] == [] and prefetch["failed"] == {}
    assert prefetch["deadline_ms"] == 10_000  # GOAT_PREFETCH__TIMEOUT reached the graph
    assert isinstance(report["budget"], int) and report["budget"] > 0
    assert 0 <= report["confidence"] <= 1 and 0 <= report["complexity"] <= 1
    assert report["degraded"] == {}


def test_inspect_shows_the_whole_turn_of_each_excerpt_on_request(imported: Imported) -> None:
    # Every message over 20 characters cut to its sentences holding the question's words.
    [report] = json_lines(goat("inspect", "--chat", CHAT, "--json", "--whole-turns", "--set",
                               "retrieval.whole_message_chars=20", ALPHA, env=imported.env, cwd=imported.cwd))
    failed = next(item for item in report["l3"] if item["id"] == ALPHA_FAILED)
    whole = f"user: {HISTORY[2][1]}\nassistant: {HISTORY[2][2]}"
    assert failed["excerpt"] is True and failed["turn"] == whole and failed["content"] != whole
    assert "alpha-5675" in failed["content"]
    assert all(("turn" in item) == item["excerpt"] for item in report["l3"])


def test_inspect_human_output_shows_the_injected_lines(imported: Imported) -> None:
    result = ok(goat("inspect", "--chat", CHAT, TOMATO, env=imported.env, cwd=imported.cwd))

    out = result.stdout
    assert out.startswith(f"» {TOMATO}\n")
    injected = int(re.search(r"injected (\d+):", out).group(1))
    entries = re.findall(r"^    \[\d{4}-\d\d-\d\d \d\d:\d\d\] (\w+) +d=[\d.]+ score=[\d.]+  (.*)$", out, re.M)
    assert injected == len(entries) >= 1
    assert any(text.startswith(f"user: {HISTORY[0][1]}") for _, text in entries), out
    assert "latency ms: " in out and "prefetch " in out


def test_inspect_queries_prints_one_json_object_per_non_empty_line_in_order(imported: Imported) -> None:
    queries = imported.cwd / "queries.txt"
    queries.write_text(f"{ALPHA}\n\n{TOMATO}\n   \n{PORTO}\n", encoding="utf-8")

    reports = json_lines(goat("inspect", "--chat", CHAT, "--queries", queries, env=imported.env, cwd=imported.cwd))

    assert [r["message"] for r in reports] == [ALPHA, TOMATO, PORTO]
    assert all(REPORT_KEYS <= set(r) for r in reports)
    expected = [ALPHA_FAILED, TOMATO_PLANTED, CLARA_WEDDING]
    assert [want in [item["id"] for item in r["l3"]] for r, want in zip(reports, expected)] == [True] * 3
    assert all(r["turn"] == len(HISTORY) + 1 for r in reports)  # inspecting writes nothing


def test_inspect_queries_missing_file_is_a_usage_error(imported: Imported) -> None:
    result = goat("inspect", "--chat", CHAT, "--queries", "no-such.txt", env=imported.env, cwd=imported.cwd)

    assert result.returncode == 2
    assert "no-such.txt" in result.stderr and "Traceback" not in result.stderr


def test_inspect_output_cut_short_by_the_reader_exits_without_a_traceback(imported: Imported) -> None:
    queries = imported.cwd / "many.txt"
    # Far more than a pipe buffer (64 KiB) of reports after the first, so the command is
    # still writing when the reader goes away, whatever the scheduling.
    queries.write_text(f"{ALPHA}\n" * 80, encoding="utf-8")
    command = [str(GOAT), "inspect", "--chat", CHAT, "--json", "--queries", str(queries)]
    with subprocess.Popen(command, env=imported.env, cwd=imported.cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:  # fmt: skip
        first = json.loads(process.stdout.readline())
        process.stdout.close()  # like `| head -1`
        stderr = process.stderr.read()
        returncode = process.wait(timeout=HANG_GUARD)

    assert first["message"] == ALPHA
    assert returncode == 1
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert servers_left(imported.data_dir) == []


def test_another_chat_sees_nothing_of_the_first(imported: Imported) -> None:
    report = inspect_json(ALPHA, env=imported.env, cwd=imported.cwd, chat="other-chat")
    same_user = json_lines(
        goat("inspect", "--chat", "other-chat", "--user", USER, "--json", ALPHA, env=imported.env, cwd=imported.cwd)
    )[0]

    for r in (report, same_user):
        assert r["chat_id"] == "other-chat"
        assert r["l3"] == [] and r["tokens"]["l3"] == 0
        assert r["turn"] == 1 and r["tokens"]["l2"] == 0  # no L2 either
        assert r["prefetch"]["found"].get("specific_key", 0) == 0
        assert "specific_key" in r["prefetch"]["fired"]  # it looked, and found nothing


def test_reimporting_the_same_file_adds_nothing(imported: Imported) -> None:
    queries = imported.cwd / "idempotence.txt"
    queries.write_text(f"{ALPHA}\n{TOMATO}\n{PORTO}\n", encoding="utf-8")

    def snapshot() -> list[tuple[int, list[str], dict]]:
        reports = json_lines(goat("inspect", "--chat", CHAT, "--queries", queries, env=imported.env, cwd=imported.cwd))
        return [(r["turn"], sorted(item["id"] for item in r["l3"]), r["tokens"]) for r in reports]

    before = snapshot()
    again = ok(goat("import", imported.transcript.name, env=imported.env, cwd=imported.cwd))
    after = snapshot()

    assert again.stdout.splitlines() == [REIMPORT_SUMMARY]
    assert f"{len(HISTORY)}/{len(HISTORY)}" in again.stderr
    assert after == before
    assert before[0][0] == len(HISTORY) + 1
    store = chromadb.PersistentClient(
        path=str(imported.data_dir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    assert store.get_collection(collection_name(CHAT)).count() == len(HISTORY)  # L3 has each turn once


# ---- errors ---------------------------------------------------------------------------


def test_malformed_transcript_is_rejected_with_its_line_and_nothing_is_imported(tmp_path: Path) -> None:
    chat = "broken-chat"
    good = [
        {"chat_id": chat, "role": "user", "content": "The garden shed code is zebra-9911.", "timestamp": 1_700_000_000},
        {"chat_id": chat, "role": "assistant", "content": "Noted, zebra-9911.", "timestamp": 1_700_000_010},
    ]
    later = {"chat_id": chat, "role": "user", "content": "Another zebra-9911 note.", "timestamp": 1_700_000_100}
    transcript = tmp_path / "broken.jsonl"
    lines = [json.dumps(good[0]), json.dumps(good[1]), '{"chat_id": "broken-chat", "role": ', json.dumps(later)]
    transcript.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = goat_env(tmp_path / "data")

    result = goat("import", transcript, env=env, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stdout == ""
    assert "line 3" in result.stderr and "Traceback" not in result.stderr
    report = inspect_json("What is the garden shed code zebra-9911?", env=env, cwd=tmp_path, chat=chat)
    assert report["l3"] == [] and report["turn"] == 1
    assert report["prefetch"]["keys"] == ["zebra-9911"]
    assert servers_left(tmp_path / "data") == []


def test_import_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = goat("import", "nowhere.jsonl", env=goat_env(tmp_path / "data"), cwd=tmp_path)

    assert result.returncode == 2
    assert "nowhere.jsonl" in result.stderr and "Traceback" not in result.stderr


def test_bad_environment_value_is_rejected_naming_the_key_and_the_variable(tmp_path: Path) -> None:
    result = goat("stats", env=goat_env(tmp_path / "data", GOAT_PREFETCH__TIMEOUT="abc"), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "prefetch.timeout" in line and "GOAT_PREFETCH__TIMEOUT" in line
    assert not (tmp_path / "data").exists()  # rejected at start, before any backend


def test_a_renamed_setting_is_read_under_its_old_name_from_the_file_the_environment_and_a_run(tmp_path: Path) -> None:
    from graph.settings import Settings

    config = tmp_path / "goat.toml"
    config.write_text("[retrieval]\nneighbour_weight = 0.5\n", encoding="utf-8")
    assert Settings.load(config, {}).retrieval.beside_weight == 0.5
    config.write_text("", encoding="utf-8")
    variables = {"GOAT_RETRIEVAL__MEANING_FIRST_WORDS_WEIGHT": "0.3"}
    assert Settings.load(config, variables).retrieval.meaning_first_lexical_weight == 0.3
    run = Settings.load(config, {}).with_overrides({"retrieval.neighbour_weight": 0.1})
    assert run.retrieval.beside_weight == 0.1


@pytest.mark.parametrize(
    "toml, named",
    [
        ("[prefetch]\ntimeot = 0.3\n", "prefetch.timeot"),  # unknown key in a known section
        ("colour = 'blue'\n", "colour"),  # unknown top-level key
        ("[prefetch\ntimeout = 0.3\n", "goat.toml"),  # not TOML at all
    ],
    ids=["unknown-key", "unknown-top-level-key", "invalid-toml"],
)
def test_bad_settings_file_in_the_cwd_is_rejected_naming_the_problem(tmp_path: Path, toml: str, named: str) -> None:
    (tmp_path / "goat.toml").write_text(toml, encoding="utf-8")

    result = goat("doctor", env=goat_env(tmp_path / "data"), cwd=tmp_path)

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert named in line, line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


REDIS_URL_FORMS = ("not a Redis URL: use redis://host:port/db (user:password@ before the host when it wants them), "
                   "rediss://… over TLS, or unix:///path/to/redis.sock")
SETTING_REFUSED = [  # (arguments, variables, goat.toml, the whole error line)
    pytest.param(["inspect", "--chat", CHAT, "--set", "retrieval.gap_significanse=2", "hello"], {}, None,
                 "unknown setting retrieval.gap_significanse (from --set); did you mean retrieval.gap_significance?",
                 id="flag-unknown"),
    pytest.param(["stats"], {"GOAT_RETRIEVAL__GAP_SIGNIFICANSE": "2"}, None,
                 "unknown setting retrieval.gap_significanse (from GOAT_RETRIEVAL__GAP_SIGNIFICANSE); "
                 "did you mean retrieval.gap_significance?", id="variable-unknown"),
    pytest.param(["stats"], {}, "[retrieval]\ngap_significanse = 2\n",
                 "unknown setting retrieval.gap_significanse (from goat.toml); "
                 "did you mean retrieval.gap_significance?",
                 id="file-unknown"),
    pytest.param(["stats"], {}, "colour = 'blue'\n",
                 "unknown setting colour (from goat.toml); the top level holds data_dir, identity, redis, chroma, letta, "
                 "memory, prefetch, retrieval, aits, budget, cache, embeddings, words, tools, llm, telegram, mcp, server, "
                 "observability", id="file-unknown-unlike-any"),
    pytest.param(["inspect", "--chat", CHAT, "--set", "retrieval.gap_significance=NaN", "hello"], {}, None,
                 "invalid setting retrieval.gap_significance (from --set): Input should be a finite number "
                 "(in force: 3.0)", id="flag-nan"),
    pytest.param(["inspect", "--chat", CHAT, "--set", "retrieval.relevance_ratio=0", "hello"],
                 {"GOAT_EMBEDDINGS__MODEL": "e5-small"}, None,  # the encoder's own ratio is the one in force
                 "invalid setting retrieval.relevance_ratio (from --set): Input should be greater than 0 "
                 "(in force: 0.8)", id="flag-encoder-default"),
    pytest.param(["stats"], {"GOAT_RETRIEVAL__GAP_SIGNIFICANCE": "inf"}, None,
                 "invalid setting retrieval.gap_significance (from GOAT_RETRIEVAL__GAP_SIGNIFICANCE): "
                 "Input should be a finite number", id="variable-inf"),
    pytest.param(["inspect", "--chat", CHAT, "--set", "retrieval.gap_significance=true", "hello"], {}, None,
                 "invalid setting retrieval.gap_significance (from --set): expected a number, "
                 "not a boolean (in force: 3.0)", id="flag-boolean"),
    pytest.param(["stats"], {}, "[aits]\nbase = false\n",
                 "invalid setting aits.base (from goat.toml): expected a number, not a boolean",
                 id="file-boolean"),
    pytest.param(["export", "--user", USER], {"GOAT_REDIS_URL": "htp://ana:s3cret-pw@cache:6379/0"}, None,
                 f"invalid setting redis.url (from GOAT_REDIS_URL): {REDIS_URL_FORMS}",
                 id="variable-redis-scheme"),
    pytest.param(["stats"], {"GOAT_REDIS_URL": "localhost:6379"}, None,
                 f"invalid setting redis.url (from GOAT_REDIS_URL): {REDIS_URL_FORMS}",
                 id="variable-redis-no-scheme"),
    pytest.param(["import", "history.jsonl"], {}, "[redis]\nurl = 'redis://:s3cret-pw@cache:637900/0'\n",
                 "invalid setting redis.url (from goat.toml): not a valid Redis URL: its port is not a "
                 "number from 0 to 65535 (a / ? # or @ in the password must be percent-encoded)",
                 id="file-redis-port"),
    pytest.param(["inspect", "--chat", CHAT, "hello"], {"GOAT_REDIS_URL": "redis://cache:6379/0?socket_timeout=s3cret"},
                 None, "invalid setting redis.url (from GOAT_REDIS_URL): not a valid Redis URL: Invalid "
                 "value for 'socket_timeout' in connection URL.", id="variable-redis-query"),
]


@pytest.mark.parametrize("arguments, variables, toml, error", SETTING_REFUSED)
def test_a_setting_no_knob_has_or_a_value_no_number_is_refused_naming_its_origin(
    arguments: list[str], variables: dict[str, str], toml: str | None, error: str, tmp_path: Path
) -> None:
    if toml is not None:
        (tmp_path / "goat.toml").write_text(toml, encoding="utf-8")

    (tmp_path / "history.jsonl").write_text(history_jsonl(CHAT, USER), encoding="utf-8")

    result = goat(*arguments, env=goat_env(tmp_path / "data", **variables), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"goat: {error}"]
    assert not (tmp_path / "data").exists()  # refused before any backend started


# ---- doctor -------------------------------------------------------------------------


def test_doctor_on_embedded_defaults(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    result = ok(goat("doctor", env=goat_env(data_dir), cwd=tmp_path))

    lines = result.stdout.splitlines()

    def line(name: str) -> str:
        return next(l for l in lines if re.match(rf"\[\w+ *\] +{name}:", l))

    assert line("embeddings").startswith("[ok")
    assert line("redis").startswith("[ok") and "embedded" in line("redis") and str(data_dir) in line("redis")
    assert line("chroma").startswith("[ok") and "embedded" in line("chroma") and str(data_dir) in line("chroma")
    assert line("facts").startswith("[ok")
    model = line("model")
    assert model.startswith("[note]") and "GOAT_MODEL" in model and "OPENAI_API_KEY" in model
    assert not any(l.startswith("[FAIL") for l in lines)
    assert servers_left(data_dir) == []


@pytest.mark.parametrize("variables, unchecked", [
    ({"GOAT_REDIS_URL": "htp://ana:s3cret-pw@cache:6379/0"}, {"redis", "encoder", "facts"}),
    ({"GOAT_REDIS_URL": "localhost:6379", "GOAT_PREFETCH__TIMEOUT": "abc"}, {"redis", "encoder", "facts"}),
    ({"GOAT_PREFETCH__TIMEOUT": "abc"}, set()),
], ids=["redis-scheme", "redis-no-scheme-and-a-number", "a-number"])
def test_doctor_reports_an_invalid_setting_as_a_failed_check_and_checks_the_rest(
    tmp_path: Path, variables: dict[str, str], unchecked: set[str]
) -> None:
    data_dir = tmp_path / "data"

    result = goat("doctor", env=goat_env(data_dir, **variables), cwd=tmp_path)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "s3cret-pw" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    [settings] = [line for line in lines if line.startswith("[FAIL] settings:")]
    for variable in variables:
        assert f"(from {variable})" in settings
    if "GOAT_REDIS_URL" in variables:
        assert REDIS_URL_FORMS in settings
    checked = {match.group(1) for line in lines if (match := re.match(r"\[\w+ *\] +(\w[\w ]*):", line))}
    every_check = {"settings", "embeddings", "data folder", "redis", "chroma", "encoder", "facts", "model"}
    assert checked == every_check - unchecked
    assert [line for line in lines if line.startswith("[FAIL")] == [settings]  # the others are fine
    # An invalid Redis URL is not replaced by the embedded server behind the user's back.
    assert (data_dir / "redis").exists() == ("redis" not in unchecked)
    assert servers_left(data_dir) == []


def test_doctor_does_not_check_the_default_data_folder_for_one_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "goat.toml").write_text("data_dir = 5\n", encoding="utf-8")
    env = goat_env(tmp_path / "unused")
    del env["GOAT_DATA_DIR"]

    result = goat("doctor", env=env, cwd=tmp_path)

    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    [settings] = [line for line in lines if line.startswith("[FAIL] settings:")]
    assert "invalid setting data_dir (from goat.toml): expected a path, as text" in settings and "<class" not in settings
    # What keeps its data in the data folder is not checked in another one instead.
    checked = {match.group(1) for line in lines if (match := re.match(r"\[\w+ *\] +(\w[\w ]*):", line))}
    assert checked == {"settings", "embeddings", "model"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["goat.toml"]


def test_doctor_with_an_invalid_data_folder_still_checks_a_redis_server_named_by_its_url(
        tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "goat.toml").write_text("data_dir = 5\n", encoding="utf-8")
    env = goat_env(tmp_path / "unused", GOAT_REDIS_URL=redis_url)
    del env["GOAT_DATA_DIR"]

    result = goat("doctor", env=env, cwd=tmp_path)

    lines = result.stdout.splitlines()
    checked = {match.group(1) for line in lines if (match := re.match(r"\[\w+ *\] +(\w[\w ]*):", line))}
    assert checked == {"settings", "embeddings", "redis", "facts", "model"}  # facts live in that Redis
    assert [line for line in lines if line.startswith("[FAIL")] == [
        line for line in lines if line.startswith("[FAIL] settings:")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["goat.toml"]


def test_doctor_fails_on_an_unreachable_redis_and_says_how_to_fix_it(tmp_path: Path, closed_port: int) -> None:
    env = goat_env(tmp_path / "data", GOAT_REDIS_URL=f"redis://127.0.0.1:{closed_port}/0")

    result = goat("doctor", env=env, cwd=tmp_path)

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    failed = next(n for n, l in enumerate(lines) if l.startswith("[FAIL] redis:"))
    assert str(closed_port) in lines[failed]
    assert lines[failed + 1].strip().startswith("fix:") and "GOAT_REDIS_URL" in lines[failed + 1]
    assert not (tmp_path / "data" / "redis").exists()  # no embedded server behind the user's back


def test_doctor_fails_on_an_embedded_redis_that_cannot_start_and_says_what_to_do(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "redis").write_text("a file where the server's folder should be")

    result = goat("doctor", env=goat_env(data_dir), cwd=tmp_path)

    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    failed = next(n for n, l in enumerate(lines) if l.startswith("[FAIL] redis:"))
    assert f"embedded redis-server, data in {data_dir / 'redis'}" in lines[failed]
    assert "goat doctor" not in result.stdout  # says what to do, not to run what is running
    assert lines[failed + 1].strip() == (f"fix: make {data_dir / 'redis'} readable and writable, with space free, "
                                         "or set GOAT_REDIS_URL to a Redis server")
    assert servers_left(data_dir) == []


def test_doctor_fails_on_a_chroma_server_it_cannot_reach_and_says_what_to_do(tmp_path: Path, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"

    result = goat("doctor", env=goat_env(tmp_path / "data", GOAT_CHROMA_URL=url), cwd=tmp_path)

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    failed = next(n for n, l in enumerate(lines) if l.startswith("[FAIL] chroma:"))
    assert lines[failed].startswith(f"[FAIL] chroma: server at {url} — cannot open {url} (")
    assert "goat doctor" not in result.stdout  # says what to do, not to run what is running
    assert lines[failed + 1].strip() == ("fix: start the Chroma server at GOAT_CHROMA_URL (`chroma run --path DIR "
                                         "--port PORT`), or unset GOAT_CHROMA_URL for the embedded store")


def test_doctor_fails_on_an_embedded_chroma_it_cannot_open_and_says_what_to_do(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "chroma").write_text("a file where the store's folder should be")

    result = goat("doctor", env=goat_env(data_dir), cwd=tmp_path)

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    failed = next(n for n, l in enumerate(lines) if l.startswith("[FAIL] chroma:"))
    assert f"embedded PersistentClient in {data_dir / 'chroma'}" in lines[failed]
    assert lines[failed + 1].strip() == ("fix: make the folder above readable and writable, with space free, or set "
                                         "GOAT_CHROMA_URL to a Chroma server")  # not "unset" what is not set
    assert servers_left(data_dir) == []


def test_every_command_s_help_begins_with_what_it_does(tmp_path: Path) -> None:
    env = goat_env(tmp_path / "data")
    usage = ok(goat("--help", env=env, cwd=tmp_path)).stdout
    names = re.search(r"\{([a-z,-]+)\}", usage).group(1).split(",")
    assert {"chat", "stats", "doctor"} <= set(names)
    for name in names:
        text = ok(goat(name, "--help", env=env, cwd=tmp_path)).stdout
        description = text.split("\n\n")[1]  # after the usage lines
        assert not description.startswith(("options:", "positional arguments:")), (name, text)
        assert len(description.split()) >= 4, (name, description)


def test_doctor_fails_on_a_letta_that_does_not_answer(tmp_path: Path, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    result = goat("doctor", env=goat_env(tmp_path / "data", GOAT_LETTA_URL=url), cwd=tmp_path)

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    [facts] = [n for n, l in enumerate(lines) if re.match(r"\[\w+ *\] +facts:", l)]
    assert lines[facts].startswith("[FAIL]") and f"Letta at {url}" in lines[facts]
    assert "ConnectError" in lines[facts] and "reachable" not in lines[facts]
    assert lines[facts + 1].strip().startswith("fix:") and "GOAT_LETTA_URL" in lines[facts + 1]


def serves_only_fake_model(body: dict[str, Any]) -> Any:
    """An endpoint that serves one model, answering any other as OpenAI does."""
    if body["model"] != "fake-model":
        return error_reply(404, f"The model `{body['model']}` does not exist or you do not have access to it.",
                           code="model_not_found")
    return None  # the default answer


MODEL_FAILURES = [  # (variables changed from a working model, what the line says, the variable its fix names)
    pytest.param({"OPENAI_BASE_URL": "http://127.0.0.1:{closed_port}/v1"},
                 "unreachable: All connection attempts failed", "OPENAI_BASE_URL", id="dead-endpoint"),
    pytest.param({"OPENAI_API_KEY": None}, "no API key", "OPENAI_API_KEY", id="no-key"),
    pytest.param({"OPENAI_API_KEY": "sk-goat-cli-WRONGKEY-0c4d2b"}, "the key was refused", "OPENAI_API_KEY",
                 id="wrong-key"),
    pytest.param({"GOAT_MODEL": "no-such-model"}, "The model `no-such-model` does not exist", "GOAT_MODEL",
                 id="unknown-model"),
]


@pytest.mark.parametrize("changed, said, variable", MODEL_FAILURES)
def test_doctor_fails_on_a_model_it_cannot_use_naming_the_variable_to_fix(
    changed: dict[str, str | None], said: str, variable: str, tmp_path: Path, closed_port: int, redis_server
) -> None:
    with FakeOpenAI(api_key=OPENAI_KEY, responder=serves_only_fake_model) as fake:
        variables = {"GOAT_REDIS_URL": redis_server.url, "GOAT_MODEL": "fake-model", "OPENAI_API_KEY": OPENAI_KEY,
                     "OPENAI_BASE_URL": fake.base_url}
        for name, value in changed.items():
            if value is None:
                del variables[name]
            else:
                variables[name] = value.format(closed_port=closed_port)
        result = goat("doctor", env=goat_env(tmp_path / "data", **variables), cwd=tmp_path)

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    [model] = [n for n, line in enumerate(lines) if re.match(r"\[\w+ *\] +model:", line)]
    assert lines[model].startswith("[FAIL] model: ") and said in lines[model]
    assert lines[model + 1].strip().startswith("fix: ") and variable in lines[model + 1]
    assert not any(line.startswith("[FAIL") for line in lines[:model])  # the backends are fine
    assert OPENAI_KEY not in result.stdout + result.stderr


def test_doctor_asks_the_model_and_telegram_for_real_and_prints_no_secret(tmp_path: Path, redis_server) -> None:
    other_token = "987654321:GOAT-CLI-OTHER-TOKEN-1a9f"
    with FakeOpenAI(api_key=OPENAI_KEY) as fake, FakeTelegram(BOT_TOKEN) as telegram:
        env = goat_env(tmp_path / "data", GOAT_REDIS_URL=redis_server.url, GOAT_MODEL="fake-model",
                       OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=fake.base_url, TELEGRAM_BOT_TOKEN=BOT_TOKEN,
                       GOAT_TELEGRAM_API_URL=telegram.base_url)
        healthy = goat("doctor", env=env, cwd=tmp_path)
        refused = goat("doctor", env={**env, "TELEGRAM_BOT_TOKEN": other_token}, cwd=tmp_path)
        asked = fake.requests

    lines = ok(healthy).stdout.splitlines()
    assert f"[ok]   model: fake-model at {env['OPENAI_BASE_URL']} — answers" in lines
    assert f"[ok]   telegram: @goat_test_bot (id 700000001) via {env['GOAT_TELEGRAM_API_URL']}" in lines
    assert [request["max_completion_tokens"] for request in asked] == [1, 1]  # one token per doctor run
    assert refused.returncode == 1
    lines = refused.stdout.splitlines()
    [telegram_line] = [n for n, line in enumerate(lines) if line.startswith("[FAIL] telegram:")]
    assert "refused the token: 401 Unauthorized" in lines[telegram_line]
    assert "TELEGRAM_BOT_TOKEN" in lines[telegram_line + 1]
    for result in (healthy, refused):
        for secret in (OPENAI_KEY, BOT_TOKEN, other_token):
            assert secret not in result.stdout + result.stderr


# ---- goat bot ----------------------------------------------------------------------------


@pytest.mark.parametrize("variables, named", [({}, "GOAT_MODEL"), ({"GOAT_MODEL": "fake-model"}, "OPENAI_API_KEY")],
                         ids=["no-model", "no-key"])
def test_bot_without_a_usable_model_refuses_to_start_naming_the_variable(
    variables: dict[str, str], named: str, tmp_path: Path, closed_port: int
) -> None:
    env = goat_env(tmp_path / "data", TELEGRAM_BOT_TOKEN=BOT_TOKEN,
                   GOAT_TELEGRAM_API_URL=f"http://127.0.0.1:{closed_port}", **variables)

    result = goat("bot", env=env, cwd=tmp_path)

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("goat: the bot needs a model: ") and named in line
    assert BOT_TOKEN not in result.stdout + result.stderr
    assert not (tmp_path / "data").exists()  # refused before any backend started


def test_bot_without_a_token_or_a_model_names_both(tmp_path: Path) -> None:
    result = goat("bot", env=goat_env(tmp_path / "data"), cwd=tmp_path)

    assert result.returncode == 2
    token, model = result.stderr.splitlines()
    assert token.startswith("goat: no Telegram bot token: ") and "TELEGRAM_BOT_TOKEN" in token
    assert model.startswith("goat: the bot needs a model: ") and "GOAT_MODEL" in model
    assert not (tmp_path / "data").exists()


def test_import_with_an_unreachable_redis_fails_cleanly(tmp_path: Path, closed_port: int) -> None:
    transcript = tmp_path / "history.jsonl"
    transcript.write_text(history_jsonl(CHAT, USER), encoding="utf-8")
    env = goat_env(tmp_path / "data", GOAT_REDIS_URL=f"redis://127.0.0.1:{closed_port}/0")

    result = goat("import", transcript, env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert re.search(rf"^goat: redis is unavailable: .*127\.0\.0\.1:{closed_port}", result.stderr, re.M)


# ---- demo ------------------------------------------------------------------------------


def demo_summary(out: str) -> tuple[str, dict[str, tuple[int, list[str], list[str]]]]:
    """(the 'Loaded …' line, per question: (turn, mechanisms fired, mechanisms of injected lines))."""
    loaded = next(l for l in out.splitlines() if l.startswith("Loaded the demo conversation"))
    blocks = {}
    for block in re.split(r"^(?=» )", out, flags=re.M)[1:]:
        question = block.splitlines()[0][2:]
        turn = int(re.search(r"· turn (\d+) ·", block).group(1))
        fired = re.search(r"prefetch: fired (.+?) ·", block).group(1).split(", ")
        injected = int(re.search(r"injected (\d+):", block).group(1))
        mechanisms = re.findall(r"^    \[\d{4}-\d\d-\d\d \d\d:\d\d\] (\w+) ", block, re.M)
        assert len(mechanisms) == injected, block
        blocks[question] = (turn, fired, mechanisms)
    return loaded, blocks


def injected_lines(out: str) -> dict[str, list[str]]:
    """Per question, the injected lines' shown text, in the order shown."""
    return {block.splitlines()[0][2:]: re.findall(r"^    \[\d{4}-\d\d-\d\d \d\d:\d\d\] .*?  user: (.*)$", block, re.M)
            for block in re.split(r"^(?=» )", out, flags=re.M)[1:]}


def test_demo_without_a_model_shows_each_mechanism_and_resets_its_chat(tmp_path: Path) -> None:
    env = goat_env(tmp_path / "data")

    first = ok(goat("demo", env=env, cwd=tmp_path))
    loaded, blocks = demo_summary(first.stdout)

    assert "No model configured" in first.stdout
    assert list(blocks) == DEMO_QUESTIONS
    turns = int(re.search(r"(\d+) turns", loaded).group(1))
    assert turns > 0
    assert {turn for turn, _, _ in blocks.values()} == {turns + 1}
    yesterday = blocks[next(q for q in DEMO_QUESTIONS if "yesterday" in q)]
    assert "temporal" in yesterday[1] and "temporal" in yesterday[2]
    alpha = blocks[next(q for q in DEMO_QUESTIONS if "alpha-5675" in q)]
    assert "specific_key" in alpha[1] and "specific_key" in alpha[2]
    assert first.stdout.count("injected ") == len(DEMO_QUESTIONS)
    assert "answer:" not in first.stdout
    # The demo chat is bilingual: a greeting injects nothing, an English question none of the
    # Romanian evening's lines (each opens with Romanian letters), the Romanian question them first.
    lines = injected_lines(first.stdout)
    assert lines["hi, how are you?"] == []
    romanian = re.compile("[ăâîșțĂÂÎȘȚ]")
    asked_in_romanian = next(q for q in DEMO_QUESTIONS if romanian.search(q))
    for question in DEMO_QUESTIONS:
        if question != asked_in_romanian:
            assert not [line for line in lines[question] if romanian.search(line)], question
    assert all(romanian.search(line) for line in lines[asked_in_romanian][:2])

    # Someone chats in the demo chat between two runs; the next demo starts from scratch anyway.
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"chat_id": "demo", "role": "user", "content": "An unrelated extra note.",
                                 "timestamp": "2026-01-01T00:00:00Z"}) + "\n", encoding="utf-8")  # fmt: skip
    ok(goat("import", extra, "--into", "demo", env=env, cwd=tmp_path))  # the demo's people are others
    second = ok(goat("demo", env=env, cwd=tmp_path))

    assert demo_summary(second.stdout) == (loaded, blocks)
    assert "An unrelated extra note" not in second.stdout
    assert servers_left(tmp_path / "data") == []


def test_demo_keeps_the_conversations_dates_and_a_second_run_adds_no_turn(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        env = goat_env(tmp_path / "data", GOAT_MODEL="fake-model", OPENAI_API_KEY=OPENAI_KEY,
                       OPENAI_BASE_URL=fake.base_url)
        first = ok(goat("demo", env=env, cwd=tmp_path))
        second = ok(goat("demo", env=env, cwd=tmp_path))
        first_prompt = fake.requests[0]["messages"][0]["content"]
    after = inspect_json("And what else?", env=env, cwd=tmp_path, chat="demo")

    loaded, blocks = demo_summary(first.stdout)
    assert loaded.endswith("23 December 2025 to 14 January 2026.")  # the dates the conversation speaks of
    assert "asked on Thursday 15 January 2026, 12:00 UTC" in first.stdout
    assert "Current time: 2026-01-15 12:00 UTC (Thursday)" in first_prompt  # as the model is told
    dated = re.findall(r"^    \[(\d{4}-\d\d-\d\d) \d\d:\d\d\] \w+ +d=[\d.]+ score=[\d.]+  user: (.*)$",
                       first.stdout, re.M)
    assert {day for day, text in dated if "Bobotează" in text} == {"2026-01-06"}
    assert {day for day, text in dated if text.startswith("New year")} == {"2026-01-02"}
    turns = int(re.search(r"(\d+) turns", loaded).group(1))
    # With a model the questions are turns of the demo chat, one after another; a second run
    # starts again from the bundled conversation.
    asked = list(range(turns + 1, turns + 1 + len(DEMO_QUESTIONS)))
    assert [turn for turn, _, _ in blocks.values()] == asked
    assert [turn for turn, _, _ in demo_summary(second.stdout)[1].values()] == asked
    assert after["turn"] == turns + len(DEMO_QUESTIONS) + 1


# ---- server mode ------------------------------------------------------------------------


def test_server_mode_uses_the_configured_redis_and_chroma_servers(
    tmp_path: Path, system_redis_url: str, chroma_url: str
) -> None:
    chat = f"server-chat-{uuid.uuid4().hex[:8]}"
    transcript = tmp_path / "history.jsonl"
    transcript.write_text(history_jsonl(chat, USER), encoding="utf-8")
    data_dir = tmp_path / "data"
    env = goat_env(data_dir, GOAT_REDIS_URL=system_redis_url, GOAT_CHROMA_URL=chroma_url)

    imported = ok(goat("import", transcript, env=env, cwd=tmp_path))
    report = inspect_json(ALPHA, env=env, cwd=tmp_path, chat=chat)
    doctor = ok(goat("doctor", env=env, cwd=tmp_path))

    assert imported.stdout.splitlines() == [IMPORT_SUMMARY]
    assert exchange_id(HISTORY[2][1], chat) in [item["id"] for item in report["l3"]]
    assert report["turn"] == len(HISTORY) + 1
    assert re.search(rf"^\[ok\] +redis: server at {re.escape(system_redis_url)}", doctor.stdout, re.M)
    assert re.search(rf"^\[ok\] +chroma: server at {re.escape(chroma_url)}", doctor.stdout, re.M)

    with redis.Redis.from_url(system_redis_url) as client:
        keys = [key.decode() for key in client.scan_iter(match=f"*{chat}*")]
    assert keys and all(key.startswith("goat:") for key in keys), keys
    server = urlsplit(chroma_url)
    client = chromadb.HttpClient(
        host=server.hostname, port=server.port, settings=ChromaSettings(anonymized_telemetry=False)
    )
    assert client.get_collection(collection_name(chat)).count() == len(HISTORY)
    assert collection_name(chat).startswith("l3-")
    assert not (data_dir / "redis").exists() and not (data_dir / "chroma").exists()
    assert servers_left(data_dir) == []
