"""One redaction of URLs (memory.credentials.without_credentials) for everything GOAT prints, logs
or returns: the password in a URL's userinfo (an ``@`` or ``/`` inside it included) and the
values of secret-named query parameters are masked, the rest of the URL is kept.

The unit tests pin each form; the black-box ones run the installed `goat doctor` and `goat mcp`
with such URLs set the way a user sets them and search everything they print or return.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import redis
from conftest import StartEmbedded
from test_cli import goat, goat_env
from test_mcp import data, stdio_session
from test_secrecy import leaks, printed, secret_variables

from graph.observability.redaction import RedactingFilter, Redactor
from graph.settings import Settings, load_settings
from pydantic import BaseModel
from memory.stores.backends import Backends
from memory.credentials import MASK, url_secrets, without_credentials
from memory.errors import BackendUnavailable

QUERY_PASSWORD = "qpw-URLREDACTION-hunter2-71c4"
AT_PASSWORD = "p@ss-URLREDACTION-secret-value"  # an "@" inside the password
API_KEY = "sk-URLREDACTION-apikey-0d9e"
URL_SECRETS = (QUERY_PASSWORD, AT_PASSWORD, "ss-URLREDACTION-secret-value", API_KEY)


def url_leaks(text: str) -> list[str]:
    """This file's URL secrets, and test_secrecy's secrets, found in ``text``."""
    return [secret for secret in URL_SECRETS if secret in text] + leaks(text, message=False)


# ---- the redaction, form by form --------------------------------------------------------------


@pytest.mark.parametrize(
    "text, redacted",
    [
        # userinfo: it ends at the last "@" of the authority, so an "@" in the password is masked too
        ("redis://:p@ss@host:6379/0", f"redis://{MASK}@host:6379/0"),
        ("redis://user:p@ss:w@rd@host/0", f"redis://{MASK}@host/0"),
        ("http://u:pw@h/x?y=@z", f"http://{MASK}@h/x?y=@z"),  # an "@" in the query is no userinfo
        ("https://admin:hunter2@facts.example/api", f"https://{MASK}@facts.example/api"),
        ("redis://:pa/ss@host/0", f"redis://{MASK}@host/0"),  # a "/" in the password, unencoded
        # secret-named query (and fragment) parameters: their values only
        ("redis://host/0?password=hunter2&db=0", f"redis://host/0?password={MASK}&db=0"),
        ("https://api.example.com/v1?api-key=sk-abc", f"https://api.example.com/v1?api-key={MASK}"),
        ("http://h/v1?API_KEY=a&apikey=b&Token=c&access_token=d&client_secret=e&auth=f&sig=g&signature=h"
         "&passwd=i&pwd=j&pass=k&key=l&model=gpt",
         "http://h/v1?" + "&".join(f"{name}={MASK}" for name in (
             "API_KEY", "apikey", "Token", "access_token", "client_secret", "auth", "sig", "signature", "passwd",
             "pwd", "pass", "key")) + "&model=gpt"),
        ("http://h/cb#access_token=tok&state=1", f"http://h/cb#access_token={MASK}&state=1"),
        ("unix:///run/redis.sock?db=0&password=hunter2", f"unix:///run/redis.sock?db=0&password={MASK}"),
        # both at once, inside a sentence, a repr and a JSON string
        ("cannot reach redis://u:p@ss@127.0.0.1:1/0?password=x (refused)",
         f"cannot reach redis://{MASK}@127.0.0.1:1/0?password={MASK} (refused)"),
        ("{'url': 'redis://:pw@h/0?pwd=q'}", f"{{'url': 'redis://{MASK}@h/0?pwd={MASK}'}}"),
        ('{"url": "https://h/v1?api-key=k"}', f'{{"url": "https://h/v1?api-key={MASK}"}}'),
    ],
)
def test_a_urls_secrets_are_masked_and_the_rest_kept(text: str, redacted: str) -> None:
    assert without_credentials(text) == redacted


@pytest.mark.parametrize(
    "text",
    ["redis://127.0.0.1:6379/0?db=0&health_check_interval=5", "https://medium.com/@someone",
     "https://host:443/@someone?y=@z", "http://user@host/x", "unix:///run/redis.sock", "no URL: a:b@c",
     "http://h/p?q=a:b@c"],
)
def test_what_holds_no_secret_is_left_as_it_is(text: str) -> None:
    assert without_credentials(text) == text


def test_a_backend_unavailable_message_names_the_url_without_its_secrets() -> None:
    url = f"redis://:{AT_PASSWORD}@127.0.0.1:1/0?password={QUERY_PASSWORD}"
    message = str(BackendUnavailable("redis", f"cannot reach {url} (refused)", "start it or fix GOAT_REDIS_URL"))
    assert message == f"redis is unavailable: cannot reach redis://{MASK}@127.0.0.1:1/0?password={MASK} (refused)" \
                      " — start it or fix GOAT_REDIS_URL"


def test_the_redactor_masks_the_configured_urls_secrets_even_echoed_bare(tmp_path: Path) -> None:
    settings = load_settings(environ={
        "GOAT_DATA_DIR": str(tmp_path), "GOAT_REDIS_URL": f"redis://:{AT_PASSWORD}@h:1/0?password={QUERY_PASSWORD}",
        "OPENAI_BASE_URL": f"https://api.example.com/v1?api-key={API_KEY}"})
    assert set(url_secrets(settings.redis.url)) == {AT_PASSWORD, QUERY_PASSWORD}
    redact = Redactor.for_settings(settings)
    line = redact({"degraded": {"prefetch": f"AuthenticationError: {QUERY_PASSWORD} refused at {settings.redis.url}"},
                   "model": [f"at {settings.llm.base_url}", f"key {API_KEY}"]})
    assert url_leaks(json.dumps(line)) == []
    assert line["degraded"]["prefetch"] == f"AuthenticationError: {MASK} refused at redis://{MASK}@h:1/0?password={MASK}"


async def test_redis_down_at_a_url_with_a_query_password_is_an_error_without_it(
    tmp_path: Path, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"redis://127.0.0.1:{closed_port}/0?password={QUERY_PASSWORD}"
    backends = Backends(Settings(data_dir=tmp_path, redis={"url": url}))
    try:
        with pytest.raises(BackendUnavailable) as raised:
            await backends.redis.client()
    finally:
        await backends.aclose()
    assert f"127.0.0.1:{closed_port}/0?password={MASK}" in str(raised.value)
    assert url_leaks(str(raised.value)) == [] and url_leaks(caplog.text) == []


# ---- the commands ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("redis_url", [
    "redis://127.0.0.1:{port}/0?password=" + QUERY_PASSWORD,
    "redis://:" + AT_PASSWORD + "@127.0.0.1:{port}/0",
], ids=["query-password", "password-with-at"])
def test_goat_doctor_prints_no_url_secret(redis_url: str, tmp_path: Path, closed_port: int) -> None:
    env = goat_env(tmp_path / "data", GOAT_REDIS_URL=redis_url.format(port=closed_port),
                   OPENAI_BASE_URL=f"http://127.0.0.1:{closed_port}/v1?api-key={API_KEY}", **secret_variables())
    result = goat("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 1 and "[FAIL] redis" in result.stdout, printed(result)
    assert "redis is unavailable" in result.stdout and str(closed_port) in result.stdout  # it names the server
    assert f"/v1?api-key={MASK}" in result.stdout  # the model's line, its URL kept but the key
    assert url_leaks(printed(result)) == [], printed(result)


@pytest.mark.slow
async def test_goat_mcp_memory_snapshot_returns_no_query_password(
    tmp_path: Path, start_embedded: StartEmbedded
) -> None:
    server = start_embedded(tmp_path / "passworded")  # a Redis of this test's own, then given a password
    with redis.Redis.from_url(server.url) as client:
        client.config_set("requirepass", QUERY_PASSWORD)
    try:
        env = goat_env(tmp_path / "data", GOAT_REDIS_URL=f"{server.url}?db=0&password={QUERY_PASSWORD}",
                       **secret_variables())
        async with stdio_session(env, tmp_path) as session:
            result = await session.call_tool("memory_snapshot", {})
            snapshot = data(result)
    finally:
        with redis.Redis.from_url(server.url, password=QUERY_PASSWORD) as client:
            client.config_set("requirepass", "")  # so that the fixture can stop it as any other
    [backend] = [b for b in snapshot["backends"] if b["name"] == "redis"]
    assert backend["ok"], backend  # the password was really in use…
    assert backend["mode"] == f"server at {server.url}?db=0&password={MASK}"  # …and is masked
    returned = json.dumps(snapshot) + "".join(content.text for content in result.content)
    assert url_leaks(returned) == [], returned
    assert url_leaks((tmp_path / "mcp-agent-chat.stderr").read_text()) == []


def test_every_log_record_is_redacted_whichever_library_wrote_it(caplog: pytest.LogCaptureFixture) -> None:
    """goat installs the filter on the root handlers: a library's record with a URL is masked."""
    settings = Settings(llm={"api_key": "sk-logged-secret-123456"})
    caplog.handler.addFilter(RedactingFilter(Redactor.for_settings(settings)))
    logging.getLogger("chromadb.some.module").warning(
        "lost %s, key %s", "redis://:p@ss-in-a-log-9@host:6379/0?token=tok-in-a-log-9", "sk-logged-secret-123456")
    [record] = caplog.records
    assert record.getMessage() == "lost redis://[redacted]@host:6379/0?token=[redacted], key [redacted]"


def _secret_paths(model: type, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The dotted path of every setting typed SecretStr (alone, optional, or a dict of them)."""
    paths = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += _secret_paths(annotation, (*prefix, name))
        elif "SecretStr" in str(annotation):
            paths.append((*prefix, name))
    return paths


def test_every_secret_setting_is_masked_without_being_listed(tmp_path: Path) -> None:
    paths = _secret_paths(Settings)
    assert len(paths) >= 6  # llm.api_key, telegram.token and webhook_secret, mcp.token, letta.token, server.tokens
    values = {path: f"S{n}-every-secret-setting-0123456789" for n, path in enumerate(paths)}
    tree: dict = {}
    for path, value in values.items():
        *sections, name = path
        place = tree
        for section in sections:
            place = place.setdefault(section, {})
        place[name] = {"alice": value} if name == "tokens" else value
    settings = Settings.model_validate({**tree, "data_dir": str(tmp_path)})
    line = Redactor.for_settings(settings)({"said": " ".join(values.values())})
    assert [value for value in values.values() if value in line["said"]] == []
