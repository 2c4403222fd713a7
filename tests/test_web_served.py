"""`goat web` as its user runs it: the installed command, a child process, over HTTP on loopback.
What a stranger cannot do (sign everyone out, try tokens without end, reach the page under another
name), and every fault a request meets answered as a page of one line, never a traceback (an upload's
bad name, Redis killed under a request). Who sees what, in-process, is tests/test_web.py's."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.web.access import SIGN_INS_OVERALL, SIGN_INS_PER_ADDRESS
from conftest import free_port, system_redis_process, wait_for
from test_cli import GOAT, goat_env

pytestmark = pytest.mark.slow

ALICE_TOKEN = "alice-served-token-6d1f0b93"
ATTACK = 1_001  # anonymous sign-in pages asked for: the old table of sessions held 1 000


@dataclass(frozen=True)
class WebServer:
    base: str  # http://127.0.0.1:<port>
    printed: str  # the line it printed once listening
    log: Path  # its standard error
    pid: int


def address_capped(limit: int) -> list[str]:
    """The command's prefix that runs it with its address space capped at ``limit`` bytes (the same
    process: prlimit execs it). Not a preexec_fn: a child forked from a test session grown past the
    cap could not even run one."""
    return ["prlimit", f"--as={limit}", "--"]


@contextmanager
def goat_web(env: dict[str, str], cwd: Path, address_space: int | None = None) -> Iterator[WebServer]:
    """`goat web` on a free port until the block ends (SIGTERM, then it must exit 0 having printed
    nothing more), its address space capped at ``address_space`` bytes if given."""
    port = free_port()
    log = cwd / f"web-{port}.stderr"
    capped = [] if address_space is None else address_capped(address_space)
    server = subprocess.Popen([*capped, str(GOAT), "web", "--port", str(port)], env=env, cwd=cwd, text=True,
                              stdout=subprocess.PIPE, stderr=log.open("w"))
    try:
        printed = server.stdout.readline().strip()  # printed once it listens
        assert printed.startswith("goat web: "), (printed, log.read_text())
        yield WebServer(f"http://127.0.0.1:{port}", printed, log, server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        assert server.stdout.read() == ""  # the link, printed once, and nothing after


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def notice_of(html: str) -> str:
    """The one line a refusal or a fault page says."""
    [said] = re.findall(r'<p class="notice error" role="status">([^<]*)</p>', html)
    return said


def sign_in(client: httpx.Client, token: str) -> httpx.Response:
    form = client.get("/login")
    return client.post("/login", data={"csrf": csrf_of(form.text), "token": token})


@dataclass(frozen=True)
class SharedPage:
    """`goat web` with server tokens, and alice signed in at it."""

    server: WebServer
    alice: httpx.Client
    temp: Path  # its temporary folder (TMPDIR), where uploads are kept while read


@pytest.fixture(scope="module")
def shared_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedPage]:
    folder = tmp_path_factory.mktemp("web-served")
    (temp := folder / "tmp").mkdir()
    env = goat_env(folder / "data", GOAT_SERVER_TOKENS=f"alice={ALICE_TOKEN}", TMPDIR=str(temp))
    with goat_web(env, folder) as server, httpx.Client(base_url=server.base) as alice:
        assert sign_in(alice, ALICE_TOKEN).status_code == 303  # before any test spends the sign-in limit
        yield SharedPage(server, alice, temp)
        assert "Traceback" not in server.log.read_text()


def test_anonymous_sign_in_pages_by_the_thousand_sign_no_one_out(shared_page: SharedPage) -> None:
    with httpx.Client(base_url=shared_page.server.base) as stranger:
        for _ in range(ATTACK):
            assert stranger.get("/login").status_code == 200
            stranger.cookies.clear()
    home = shared_page.alice.get("/")
    assert home.status_code == 200 and "alice" in home.text


def test_sign_in_attempts_past_the_limit_get_429_from_one_address_then_from_all(shared_page: SharedPage) -> None:
    def attempts_from(address: str) -> Iterator[httpx.Response]:
        transport = httpx.HTTPTransport(local_address=address)  # another loopback address: another client
        with httpx.Client(base_url=shared_page.server.base, transport=transport) as client:
            while True:
                yield sign_in(client, "not-a-token-of-anyone-at-all")

    guesses = attempts_from("127.0.0.1")
    for _ in range(SIGN_INS_PER_ADDRESS - 1):  # the fixture's sign-in was the first
        assert next(guesses).status_code == 401
    held = next(guesses)
    assert held.status_code == 429 and int(held.headers["retry-after"]) > 0
    assert notice_of(held.text).startswith("Too many sign-in attempts from your address: try again in ")
    with httpx.Client(base_url=shared_page.server.base) as alice_again:
        assert sign_in(alice_again, ALICE_TOKEN).status_code == 429  # the right token too, from there

    addresses = iter(f"127.0.0.{n}" for n in range(2, 255))
    spent = SIGN_INS_PER_ADDRESS
    while spent < SIGN_INS_OVERALL:
        others = attempts_from(next(addresses))
        for _ in range(min(SIGN_INS_PER_ADDRESS, SIGN_INS_OVERALL - spent)):
            assert next(others).status_code == 401
            spent += 1
    held = next(attempts_from(next(addresses)))  # an address never seen before
    assert held.status_code == 429 and notice_of(held.text).startswith("Too many sign-in attempts on this page")
    assert shared_page.alice.get("/").status_code == 200  # who is signed in stays


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "localhost:1"])
def test_a_request_under_another_name_than_loopbacks_is_refused(shared_page: SharedPage, host: str) -> None:
    """DNS rebinding's shape: a page of another site whose name now points here, its Origin and
    Host both that name."""
    named = {"host": host, "origin": f"http://{host}"}
    for answer in (shared_page.alice.get("/", headers=named),
                   shared_page.alice.post("/login", headers=named, data={"csrf": "x", "token": ALICE_TOKEN})):
        assert answer.status_code == 400 and "answers only to" in notice_of(answer.text), answer.text
    port = shared_page.server.base.rpartition(":")[2]
    for loopback in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert shared_page.alice.get("/", headers={"host": loopback}).status_code == 200


@pytest.mark.parametrize("name", ["..", "x" * 300 + ".jsonl"])
def test_an_upload_named_badly_is_refused_with_400_and_leaves_nothing(shared_page: SharedPage, name: str) -> None:
    csrf = csrf_of(shared_page.alice.get("/import").text)
    line = b'{"chat_id": "c", "user_id": "alice", "role": "user", "content": "hi", "timestamp": 1767000000}\n'
    answer = shared_page.alice.post("/import", data={"csrf": csrf}, files={"file": (name, line, "application/json")})
    assert answer.status_code == 400 and "file name" in notice_of(answer.text), answer.text
    assert list(shared_page.temp.glob("goat-web-import-*")) == []
    assert "Traceback" not in shared_page.server.log.read_text()


def unread_by(port: int) -> bool:
    """Whether a connection to the local ``port`` holds bytes its server has not read: a request
    waiting on it (the kernel's table of TCP sockets)."""
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state, queues = row.split()[1], row.split()[3], row.split()[4]
        if int(local.rpartition(":")[2], 16) == port and state == "01" and int(queues.partition(":")[2], 16) > 0:
            return True
    return False


def test_redis_killed_under_a_request_is_a_503_page_of_one_line_and_no_traceback(tmp_path: Path) -> None:
    (redis_dir := tmp_path / "redis").mkdir()
    with system_redis_process(redis_dir) as (redis_url, redis):
        env = goat_env(tmp_path / "data", GOAT_REDIS_URL=redis_url)
        with goat_web(env, tmp_path) as server, httpx.Client(base_url=server.base) as client:
            assert client.get(server.printed.removeprefix("goat web: open ")).status_code == 303
            assert client.get("/").status_code == 200
            os.kill(redis.pid, signal.SIGSTOP)  # paused: the next request's command waits on it, unread
            answers: list[httpx.Response] = []
            asking = threading.Thread(target=lambda: answers.append(client.get("/")))
            asking.start()
            wait_for(lambda: unread_by(int(redis_url.rpartition(":")[2].partition("/")[0])), "the request at Redis")
            redis.kill()
            redis.wait()
            asking.join()
            again = client.get("/people")
            for answer in (*answers, again):
                assert answer.status_code == 503, answer.text
                said = notice_of(answer.text)
                assert said.startswith("Redis is unavailable") and "try again" in said and "\n" not in said
            assert client.get("/import").status_code == 200  # the page serves on
        log = server.log.read_text()
        assert "Traceback" not in log and "ConnectionError" in log  # a line of each fault, not its traceback
