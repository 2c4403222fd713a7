"""Secrets and message text stay out of every log, record and error GOAT writes.

The API key, the Telegram bot token, the MCP token, the webhook secret and a password inside a
backend URL are set the way a user sets them (the environment), content logging is off, and a
turn runs through each entry point on real Redis, Chroma and MiniLM, against the loopback model
and Bot API servers, on the happy path and on failure paths: the provider answering 401/500 with
the key echoed back, Telegram failing with the token echoed back, a backend down. Every log
record (all loggers, DEBUG and up), every turn-log line, and everything each command prints is
then searched for the distinctive strings below.
"""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import free_port
from memory.facade import measurement_hooks
from bench.support.fakes import FakeOpenAI
from bench.support.fakes.telegram_server import FakeTelegram
from test_chat import goat_chat
from test_cli import GOAT, HANG_GUARD, goat, goat_env, ok
from test_graph import make_runner
from test_mcp import stdio_session, wait_until_listening
from test_telegram import running as running_bot
from test_telegram import turn_done, until

from bot.chat import ChatSession
from graph.observability.turn_log import turns_log_path
from graph.replies import APOLOGY
from graph.settings import Settings, load_settings
from memory.encoders.embeddings import LocalEmbeddings
from memory.errors import BackendUnavailable
from memory.settings import SettingsError

pytestmark = pytest.mark.slow

OPENAI_KEY = "sk-secrecy-OPENAIKEY-3f7a9c1e5b2d"
BOT_TOKEN = "5550123:SECRECY-BOTTOKEN-c0ffee42"
MCP_TOKEN = "mcp-secrecy-MCPTOKEN-8b3d1f70"
HOOK_SECRET = "hook-secrecy-HOOKSECRET-64e2"
URL_PASSWORD = "pw-secrecy-URLPASSWORD-19d3"
SECRETS = (OPENAI_KEY, BOT_TOKEN, MCP_TOKEN, HOOK_SECRET, URL_PASSWORD)
# The user's message: every word of it distinctive, a structural key included.
MESSAGE = "The heron sanctuary gate code is Marzipan-Quokka-4417, tell nobody."
MESSAGE_MARKERS = ("heron sanctuary", "Marzipan-Quokka", "4417")
ALICE = 424201


def leaks(text: str, *, message: bool = True) -> list[str]:
    """The secrets (and, unless ``message`` is False, the message's words) found in ``text``."""
    markers = SECRETS + (MESSAGE_MARKERS if message else ())
    # Not inside a longer number: a port the test picked (44173) is no leak of the message's 4417.
    return [marker for marker in markers if re.search(rf"(?<![0-9]){re.escape(marker)}(?![0-9])", text)]


def secret_variables(**extra: str) -> dict[str, str]:
    """The secrets as a user sets them, content logging explicitly off."""
    return {"OPENAI_API_KEY": OPENAI_KEY, "TELEGRAM_BOT_TOKEN": BOT_TOKEN, "GOAT_MCP_TOKEN": MCP_TOKEN,
            "GOAT_TELEGRAM_WEBHOOK_SECRET": HOOK_SECRET, "GOAT_MODEL": "fake-model",
            "GOAT_OBSERVABILITY__LOG_CONTENT": "false", **extra}  # fmt: skip


def secret_settings(tmp_path: Path, redis_url: str, **extra: str) -> Settings:
    settings = load_settings(environ={"GOAT_DATA_DIR": str(tmp_path / "data"), "GOAT_REDIS_URL": redis_url,
                                      **secret_variables(**extra)})  # fmt: skip
    assert settings.llm.api_key.get_secret_value() == OPENAI_KEY and not settings.observability.log_content
    return settings


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record captured, formatted with its traceback if any, and its bare message."""
    return caplog.text + "\n".join(record.getMessage() for record in caplog.records)


def turn_log(settings: Settings) -> str:
    path = turns_log_path(settings)
    return path.read_text("utf-8") if path.exists() else ""


def printed(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


# ---- a turn in-process, logging at DEBUG everywhere ------------------------------------------------


def script_failure(fake: FakeOpenAI, failure: str) -> None:
    if failure == "llm-401":
        fake.fail(401, f"Incorrect API key provided: {OPENAI_KEY}. Find your key at platform.example.",
                  code="invalid_api_key")
    elif failure == "llm-500":
        for _ in range(2):  # the client retries a 500 once
            fake.fail(500, f"upstream refused the request made with key {OPENAI_KEY}")


@pytest.mark.parametrize("failure", ["none", "llm-401", "llm-500", "chroma-down"])
async def test_a_turn_logs_and_records_neither_secrets_nor_the_message(
    failure: str, tmp_path: Path, redis_url: str, embeddings: LocalEmbeddings, closed_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    extra = {"GOAT_CHROMA_URL": f"http://goat:{URL_PASSWORD}@127.0.0.1:{closed_port}"} if failure == "chroma-down" else {}
    with FakeOpenAI(api_key=OPENAI_KEY, default_reply="Noted.") as fake:
        settings = secret_settings(tmp_path, redis_url, OPENAI_BASE_URL=fake.base_url, **extra)
        script_failure(fake, failure)
        runner = make_runner(settings, embeddings)
        err = io.StringIO()
        session = ChatSession(runner, "secrecy-chat", "secrecy-user", interactive=False, out=io.StringIO(), err=err)
        try:
            await session.handle(MESSAGE)  # the way `goat chat` runs a turn and reports its failure
            await measurement_hooks(runner.services.memory).settle()
        finally:
            await runner.aclose()
        assert fake.requests and fake.request_headers[0]["authorization"] == f"Bearer {OPENAI_KEY}"  # in use

    assert session.failures == (failure in ("llm-401", "llm-500"))
    lines = [json.loads(line) for line in turn_log(settings).splitlines()]
    assert [line["event"] for line in lines] == ["turn_failed" if session.failures else "turn"]
    if failure == "chroma-down":
        assert lines[0]["degraded"]["prefetch"]  # the failure is recorded, its URL masked
    assert leaks(logged(caplog)) == []
    assert leaks(turn_log(settings)) == []
    assert leaks(err.getvalue()) == []  # the line `goat chat` prints for a failed turn


async def test_redis_down_is_an_error_without_the_urls_password(
    tmp_path: Path, embeddings: LocalEmbeddings, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = secret_settings(tmp_path, f"redis://:{URL_PASSWORD}@127.0.0.1:{closed_port}/0")
    runner = make_runner(settings, embeddings)
    try:
        with pytest.raises(BackendUnavailable) as raised:
            await runner.run("secrecy-chat", MESSAGE)
    finally:
        await runner.aclose()
    assert str(closed_port) in str(raised.value)  # it names the server, without its password
    assert leaks(str(raised.value)) == [] and leaks(logged(caplog)) == [] and leaks(turn_log(settings)) == []


# ---- the Telegram bot in-process -------------------------------------------------------------------


async def test_the_bot_logs_neither_its_token_nor_the_message_even_when_telegram_fails(
    tmp_path: Path, redis_url: str, embeddings: LocalEmbeddings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI(api_key=OPENAI_KEY, default_reply="Noted.") as fake, FakeTelegram(BOT_TOKEN) as telegram:
        settings = secret_settings(tmp_path, redis_url, OPENAI_BASE_URL=fake.base_url,
                                   GOAT_TELEGRAM_API_URL=telegram.base_url, GOAT_ALLOWED_USERS=str(ALICE))
        async with running_bot(settings, embeddings) as runner:
            telegram.send(ALICE, ALICE, MESSAGE)
            await until(telegram, lambda: telegram.chat(ALICE) == ["Noted."])
            await turn_done(runner, ALICE)
            # Telegram refuses the streamed reply, the finished one and the apology, each time echoing
            # the token it was called with; the error handler's apology gets through.
            for _ in range(3):
                telegram.fail_next("sendMessage", 500, f"Internal Server Error: bot{BOT_TOKEN} is overloaded")
            telegram.send(ALICE, ALICE, MESSAGE)
            await until(telegram, lambda: len(telegram.chat(ALICE)) == 2)
            await turn_done(runner, ALICE)
        assert telegram.chat(ALICE) == ["Noted.", APOLOGY]
        assert len(telegram.methods("sendMessage")) == 5
    assert any("update failed: NetworkError" in record.getMessage() for record in caplog.records)
    assert leaks(logged(caplog)) == []
    assert leaks(turn_log(settings)) == []


# ---- the commands ------------------------------------------------------------------------------------


def test_goat_chat_prints_and_logs_no_secret_on_success_401_and_500(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        fake.reply("Noted.")
        script_failure(fake, "llm-401")
        script_failure(fake, "llm-500")
        env = goat_env(data_dir, OPENAI_BASE_URL=fake.base_url, **secret_variables())
        result = goat_chat([MESSAGE, MESSAGE, MESSAGE], "--chat", "secrecy-chat", env=env, cwd=tmp_path)
        assert len(fake.requests) == 4
    stats = ok(goat("stats", env=env, cwd=tmp_path))

    assert result.returncode == 1 and result.stdout.splitlines() == ["Noted."]
    failures = result.stderr.splitlines()
    assert len(failures) == 2 and all(line.startswith("goat: the model failed: ") for line in failures)
    assert failures[0].endswith("; the message is kept as turn 2: no need to send it again")
    assert "401" in failures[0] and "500" in failures[1]
    assert "Traceback" not in result.stderr
    written = (data_dir / "logs" / "turns.jsonl").read_text("utf-8")
    assert [json.loads(line)["event"] for line in written.splitlines()] == ["turn", "turn_failed", "turn_failed"]
    assert leaks(printed(result)) == [] and leaks(written) == [] and leaks(printed(stats)) == []


def test_goat_inspect_and_doctor_with_backends_down_print_no_password(tmp_path: Path, closed_port: int) -> None:
    chroma_down = goat_env(tmp_path / "data", GOAT_CHROMA_URL=f"http://goat:{URL_PASSWORD}@127.0.0.1:{closed_port}",
                           OPENAI_BASE_URL=f"http://user:{URL_PASSWORD}@127.0.0.1:{closed_port}/v1",
                           **secret_variables())
    redis_down = {**chroma_down, "GOAT_REDIS_URL": f"redis://:{URL_PASSWORD}@127.0.0.1:{closed_port}/0"}

    inspected = ok(goat("inspect", "--chat", "secrecy-chat", MESSAGE, env=chroma_down, cwd=tmp_path))
    doctor = goat("doctor", env=chroma_down, cwd=tmp_path)
    doctor_redis = goat("doctor", env=redis_down, cwd=tmp_path)
    inspect_redis = goat("inspect", "--chat", "secrecy-chat", "--json", MESSAGE, env=redis_down, cwd=tmp_path)
    chat_redis = goat_chat([MESSAGE], env=redis_down, cwd=tmp_path)

    assert "degraded: prefetch" in inspected.stdout
    assert doctor.returncode == 1 and "[FAIL] chroma" in doctor.stdout
    assert doctor_redis.returncode == 1 and "[FAIL] redis" in doctor_redis.stdout
    for result in (inspect_redis, chat_redis):
        assert result.returncode == 1 and result.stderr.startswith("goat: redis is unavailable: ")
        assert str(closed_port) in result.stderr and "Traceback" not in result.stderr
    assert leaks(inspected.stderr) == [] and leaks(inspected.stdout, message=False) == []  # it shows the message
    for result in (doctor, doctor_redis, inspect_redis, chat_redis):
        assert leaks(printed(result)) == [], printed(result)


@pytest.mark.parametrize("how", ["unreachable", "token-refused"])
def test_goat_bot_that_cannot_reach_telegram_says_so_without_the_token(
    how: str, tmp_path: Path, closed_port: int
) -> None:
    with FakeTelegram("1:SOME-OTHER-TOKEN") as telegram:  # answers 401 to our token
        api_url = f"http://127.0.0.1:{closed_port}" if how == "unreachable" else telegram.base_url
        env = goat_env(tmp_path / "data", GOAT_TELEGRAM_API_URL=api_url, GOAT_ALLOWED_USERS=str(ALICE),
                       **secret_variables())
        result = subprocess.run([str(GOAT), "bot"], env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=HANG_GUARD, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert "telegram" in result.stderr.lower()
    assert leaks(printed(result)) == [], printed(result)


async def test_goat_mcp_tool_errors_and_its_stderr_hold_no_secret(tmp_path: Path, closed_port: int) -> None:
    env = goat_env(tmp_path / "data", GOAT_CHROMA_URL=f"http://goat:{URL_PASSWORD}@127.0.0.1:{closed_port}",
                   **secret_variables())
    texts = []
    async with stdio_session(env, tmp_path) as session:
        for tool, arguments in (("search_memory", {"query": MESSAGE}), ("store_memory", {"content": MESSAGE}),
                                ("recall", {"message": MESSAGE}), ("memory_snapshot", {}),
                                ("archive_turn", {"user": MESSAGE, "assistant": "ok", "timestamp": "soonish"}),
                                ("recent_errors", {"minutes": 10})):
            result = await session.call_tool(tool, arguments)
            texts.append(json.dumps(result.structured_content) + "".join(c.text for c in result.content))
    assert "chroma" in texts[0].lower()  # a tool error naming the backend…
    for text in texts:
        assert leaks(text, message=False) == [], text  # …without its password
    stderr = (tmp_path / "mcp-agent-chat.stderr").read_text()
    assert leaks(stderr) == [] and leaks(turn_log(Settings(data_dir=tmp_path / "data"))) == []


def test_goat_mcp_http_refusals_echo_no_token(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    # The session's Redis, not an embedded one: a signal ends the server before it could stop its own.
    env = goat_env(tmp_path / "data", GOAT_REDIS_URL=redis_url, **secret_variables())
    with (tmp_path / "http.stderr").open("w") as errors:
        server = subprocess.Popen([str(GOAT), "mcp", "--http", "--port", str(port), "--chat", "c"],
                                  env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=errors)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_until_listening(server, url)
        answers = [httpx.post(url, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
                   for headers in ({}, {"Authorization": f"Bearer {MCP_TOKEN}x"}, {"Authorization": MCP_TOKEN})]
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert all(leaks(a.text + json.dumps(dict(a.headers))) == [] for a in answers)
    assert leaks((tmp_path / "http.stderr").read_text()) == []


# ---- settings validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variables, toml, named",
    [
        ({"GOAT_PREFETCH__TIMEOUT": OPENAI_KEY}, None, "prefetch.timeout"),
        ({"GOAT_ALLOWED_USERS": BOT_TOKEN}, None, "telegram.allowed_users"),
        ({"GOAT_LLM__TEMPERATURE": MCP_TOKEN}, None, "llm.temperature"),
        ({"GOAT_LLM__API_KEYS": OPENAI_KEY}, None, "llm.api_keys"),  # a misspelt variable
        ({"GOAT_OBSERVABILITY__LOG_CONTENT": HOOK_SECRET}, None, "observability.log_content"),
        ({}, f'[llm]\napi_key = ["{OPENAI_KEY}"]\n', "llm.api_key"),  # the right key, the wrong type
        ({}, f'[telegram]\ntokn = "{BOT_TOKEN}"\n', "telegram.tokn"),
        ({}, f"[llm]\napi_key = {OPENAI_KEY}\n", "goat.toml"),  # not TOML: the value unquoted
        ({}, f'[llm]\napi_key = "{OPENAI_KEY}\n', "goat.toml"),  # not TOML: the string unterminated
        ({}, f'[llm]\napi_key = "{OPENAI_KEY}"\n[llm]\nmodel = "x"\n', "goat.toml"),  # a section twice
    ],
    ids=["env-number", "env-user-ids", "env-temperature", "env-unknown-key", "env-bool", "toml-wrong-type",
         "toml-unknown-key", "toml-unquoted", "toml-unterminated", "toml-duplicate-section"],
)
def test_a_settings_error_names_the_setting_and_echoes_no_value(
    variables: dict[str, str], toml: str | None, named: str, tmp_path: Path
) -> None:
    if toml is not None:
        (tmp_path / "goat.toml").write_text(toml, encoding="utf-8")
    environ = {"GOAT_DATA_DIR": str(tmp_path / "data"), **variables}
    with pytest.raises(SettingsError) as raised:
        load_settings(tmp_path / "goat.toml" if toml is not None else None, environ=environ)
    assert named in str(raised.value) and leaks(str(raised.value)) == [], str(raised.value)

    result = goat("stats", env=goat_env(tmp_path / "data", **variables), cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert named in line and leaks(line) == [], line
    if raised.value.keys:  # a value refused: doctor reports it among its checks, which go on
        doctor = goat("doctor", env=goat_env(tmp_path / "data", **variables), cwd=tmp_path)
        [line] = [line for line in doctor.stdout.splitlines() if line.startswith("[FAIL] settings: ")]
        assert doctor.returncode == 1 and named in line and leaks(doctor.stdout + doctor.stderr) == [], line


def test_a_run_time_override_of_a_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    env = goat_env(tmp_path / "data", **secret_variables())
    for override in (f"llm.api_key={OPENAI_KEY}", f"telegram.token={BOT_TOKEN}", f"prefetch.timeout={MCP_TOKEN}"):
        result = goat("inspect", "--chat", "c", "--set", override, "hello", env=env, cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert override.split("=")[0] in result.stderr and leaks(result.stderr) == [], result.stderr
