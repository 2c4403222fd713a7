"""JSON past its bounds (graph/json_limits.py) at the doors that read files: `goat import` and
`goat web`'s upload, run as child processes. Deep brackets in each format the content is told by,
up to the size of a value read whole, are refused in one line that names the file and the byte,
while the process's peak memory (its VmHWM, or its rusage) stays small; before the bounds, 40 KB
of brackets took 1.1 GB. Each child's address space is capped, so that code without the bounds
fails the test instead of the host. The scan itself is checked against ijson on pieces cut
anywhere."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import ijson
import pytest

from graph.importing.exports import read_export
from graph.importing.importer import TranscriptError, read_transcript
from graph.json_limits import (MAX_DEPTH, MAX_NUMBER_BYTES, MAX_VALUE_BYTES, MAX_VALUE_ITEMS, PIECE_BYTES,
                               JsonBeyondLimits, JsonScan, check_value, json_events)
from test_cli import GOAT, goat_env
from test_web_served import address_capped, goat_web

PEAK_MEMORY = Path(__file__).parents[1] / "bench" / "support" / "peak_memory.py"  # a child's peak, measured apart
PEAK_MB = 300  # `goat import`'s whole process, refusing a file before any backend starts
RISE_MB = 64  # what `goat web`'s peak may grow by (it holds the encoders from its start)
ADDRESS_SPACE = 4 << 30  # each child's cap: code without the bounds fails here, not the host
SIZES = {"40 KB": 40 << 10, "a value's limit": MAX_VALUE_BYTES - 1024}
LINE = json.dumps({"chat_id": "c", "role": "user", "content": "hi", "timestamp": 1_700_000_000}).encode() + b"\n"


def brackets(size: int) -> bytes:
    return b"[" * (size // 2) + b"]" * (size // 2)


# Each format the content is told by, deep brackets where its reader meets them; the refusal's place.
DEEP: dict[str, tuple[Callable[[int], bytes], str]] = {
    "ChatGPT (a document that begins with [)": (brackets, "after the start of the file"),
    "Telegram (deep in a message's text)": (
        lambda size: b'{"name": "Ana", "type": "personal_chat", "id": 42, "messages": [{"id": 1, "text": '
                     + brackets(size) + b"}]}",
        "after the start of the file"),  # refused as its first piece is read, before any of it is parsed
    "JSON Lines (the second line)": (lambda size: LINE + b'{"content": ' + brackets(size) + b"}\n", "line 2"),
    "JSON Lines (the first line, its first key read)": (lambda size: b'{"content": ' + brackets(size) + b"}\n",
                                                        "line 1"),
}


def measured_import(path: Path, *args: str, cwd: Path) -> tuple[int, str, float]:
    """`goat import path args` run to its end: its exit status, what it printed to stderr and its
    peak resident memory in MB (its own rusage, reaped here)."""
    peak = cwd / "peak-kb"
    with (cwd / "stderr").open("w+") as errors:
        status = subprocess.run([sys.executable, str(PEAK_MEMORY), str(peak), *address_capped(ADDRESS_SPACE),
                                 str(GOAT), "import", str(path), *args], env=goat_env(cwd / "data"), cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=errors).returncode
        errors.seek(0)
        return status, errors.read(), int(peak.read_text()) / 1024


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("kind", DEEP, ids=list(DEEP))
def test_goat_import_refuses_deep_json_in_one_line_and_little_memory(kind: str, size: int, tmp_path: Path) -> None:
    make, place = DEEP[kind]
    path = tmp_path / "deep.json"
    path.write_bytes(make(size))
    status, printed, peak = measured_import(path, *(["--me", "42"] if "Telegram" in kind else []), cwd=tmp_path)
    assert status == 2 and printed.count("\n") == 1, printed
    assert printed.startswith(f"goat: {path}: {place}")
    assert f"JSON nested deeper than {MAX_DEPTH} levels at byte" in printed
    assert peak < PEAK_MB, f"{peak:.0f} MB"
    assert not (tmp_path / "data").exists()  # refused before any backend started


@pytest.mark.slow
def test_goat_import_reads_a_long_key_repeated_in_little_memory(tmp_path: Path) -> None:
    # ijson built each event's path over its whole read buffer, copying the keys: 150 KB took 350 MB.
    key = "k" * 32_000
    message = b'{"id": 1, "type": "message", "from_id": "user42", "text": "hi", "%s": {%s"a": 0}}' % (
        key.encode(), b'"a": 0, ' * 120_000)  # and no date
    path = tmp_path / "result.json"
    path.write_bytes(b'{"name": "Ana", "type": "personal_chat", "id": 42, "messages": [%s]}' % message)
    status, printed, peak = measured_import(path, "--me", "42", cwd=tmp_path)
    assert status == 2 and printed.count("\n") == 1 and "chat 42 (Ana), message 1: date is missing" in printed, printed
    assert peak < PEAK_MB, f"{peak:.0f} MB"


# ---- goat web ----------------------------------------------------------------------------------------------


def peak_kb(pid: int) -> int:
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1))


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str, int]]:
    """`goat web` on a fresh data folder, its link opened: a client holding the session, the
    page's CSRF token and the server's PID."""
    folder = tmp_path_factory.mktemp("web")
    with goat_web(goat_env(folder / "data"), folder, ADDRESS_SPACE) as web:
        with httpx.Client(base_url=web.base, timeout=60) as client:
            assert client.get(web.printed.removeprefix("goat web: open ")).status_code == 303
            csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/import").text).group(1)
            yield client, csrf, web.pid


def uploaded(client: httpx.Client, csrf: str, name: str, content: bytes) -> dict:
    """The upload's import once it ended: its state and what it said."""
    answer = client.post("/import", data={"csrf": csrf}, files={"file": (name, content)})
    assert answer.status_code == 303, answer.text
    job = answer.headers["location"].split("job=")[1]
    for _ in range(6000):  # an ended import ends the polls; the bound only turns a hang into a failure
        status = client.get("/import/status", params={"job": job}).json()
        if status["state"] in ("done", "failed"):
            return status
    pytest.fail(f"the import of {name} did not end")


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("kind", DEEP, ids=list(DEEP))
def test_goat_web_refuses_an_upload_of_deep_json_in_one_line_and_little_memory(web, kind: str, size: int) -> None:
    client, csrf, pid = web
    before = peak_kb(pid)
    make, _ = DEEP[kind]
    status = uploaded(client, csrf, "deep.json", make(size))
    [said] = status["lines"]
    assert status["state"] == "failed" and said.startswith("deep.json: ") and "\n" not in said
    assert f"JSON nested deeper than {MAX_DEPTH} levels at byte" in said
    assert (peak_kb(pid) - before) >> 10 < RISE_MB, f"{before >> 10} MB -> {peak_kb(pid) >> 10} MB"


@pytest.mark.slow
def test_goat_web_refuses_deep_json_in_a_zipped_export(web) -> None:
    client, csrf, pid = web
    before = peak_kb(pid)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("conversations.json", brackets(MAX_VALUE_BYTES - 1024))
    status = uploaded(client, csrf, "chatgpt-export.zip", archive.getvalue())
    assert status["state"] == "failed" and f"deeper than {MAX_DEPTH} levels at byte 64" in status["lines"][0]
    assert (peak_kb(pid) - before) >> 10 < RISE_MB


# ---- the readers, in this process ----------------------------------------------------------------------------


def test_a_line_over_a_values_size_is_refused_alone_and_the_rest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_bytes(LINE + b'{"content": "' + b"x" * MAX_VALUE_BYTES + b'"}\n' + LINE)
    with pytest.raises(TranscriptError, match=r"^line 2: the line holds over 16 MB or \d+ values of JSON at byte "
                                              f"{len(LINE)} of the file$"):
        read_transcript(path)
    assert read_transcript(path, skip_invalid=True).messages == 2


def test_a_telegram_message_over_a_values_size_stops_the_reading_there(tmp_path: Path) -> None:
    parts = b", ".join([b'{"type": "plain", "text": "a"}'] * (MAX_VALUE_ITEMS // 3 + PIECE_BYTES))
    path = tmp_path / "result.json"
    path.write_bytes(b'{"name": "Ana", "type": "personal_chat", "id": 42, "messages": [{"id": 1, "text": [%s]}]}'
                     % parts)
    with pytest.raises(TranscriptError, match="before its first message: the file cannot be read past this point "
                                              r"\(a message holds over 16 MB or \d+ values of JSON at byte \d+\)"):
        read_export(path, me="42")


def scanned(document: bytes, piece: int) -> JsonScan:
    scan = JsonScan()
    for start in range(0, len(document), piece):
        scan.feed(document[start:start + piece])
    return scan


TRICKY = (b'{"a[": "]]\\"[{", "b\\\\": [1, {"c": "\\\\\\"}"}], "d": [[], {}], "e\\u005b": -1.5e3, "f": '
          b'[true, false, null, "x\\\\\\\\"]}')


@pytest.mark.parametrize("piece", [1, 2, 3, 7, len(TRICKY)])
def test_brackets_and_quotes_in_strings_are_text_wherever_the_pieces_are_cut(piece: int) -> None:
    scan = scanned(TRICKY, piece)
    assert scan.depth == 0 and scan.items == 7 + 9  # the arrays and objects opened, and the commas
    opened = b'{"x": "[[[[", "y": '
    at = len(opened) + MAX_DEPTH - 1  # the bracket one level too deep
    with pytest.raises(JsonBeyondLimits, match=f"^JSON nested deeper than {MAX_DEPTH} levels at byte {at}$"):
        scanned(opened + b"[" * (MAX_DEPTH + 5), piece)


def test_a_string_or_a_number_running_past_its_bound_is_refused_where_it_begins() -> None:
    with pytest.raises(JsonBeyondLimits, match="^a JSON string over 16 MB at byte 7$"):
        scanned(b'["ab", "' + b"\\n" * (MAX_VALUE_BYTES // 2 + PIECE_BYTES), PIECE_BYTES)
    number_over = f"^a JSON number over {MAX_NUMBER_BYTES} bytes at byte {PIECE_BYTES - 4}$"
    with pytest.raises(JsonBeyondLimits, match=number_over):
        scanned(b"[1, " + b" " * (PIECE_BYTES - 8) + b"1" * (MAX_NUMBER_BYTES + 10) + b"]", PIECE_BYTES)
    scanned(b"[" + b"1" * (MAX_NUMBER_BYTES - 10) + b"]", PIECE_BYTES // 2)  # across pieces, under the bound


def test_events_carry_ijsons_paths_and_held_values_come_whole() -> None:
    events = [(".".join(path), event, value) for path, event, value in json_events(io.BytesIO(TRICKY))]
    assert events == list(ijson.parse(io.BytesIO(TRICKY), use_float=True))
    document = b'{"messages": [{"id": 1, "text": ["a", {"b": []}]}, 7], "name": "Ana"}'
    assert [(path, event, value) for path, event, value in json_events(io.BytesIO(document), {("messages", "item")})
            if event == "value"] == [(("messages", "item"), "value", {"id": 1, "text": ["a", {"b": []}]}),
                                     (("messages", "item"), "value", 7)]


def test_a_parsed_value_is_held_to_the_same_bounds() -> None:
    nested: list = []
    for _ in range(MAX_DEPTH - 2):
        nested = [nested]
    check_value({"tags": nested}, "a value")  # 64 levels, the object's included
    with pytest.raises(JsonBeyondLimits, match=f"^JSON nested deeper than {MAX_DEPTH} levels$"):
        check_value({"tags": [nested]}, "a value")
    with pytest.raises(JsonBeyondLimits, match="^a value holds over 16 MB"):
        check_value({"tags": [0] * MAX_VALUE_ITEMS}, "a value")
