"""A new retrieval signal is one module and one line in the registry: recall runs it, the
selection judges and fuses its list with the others, and ``goat inspect``, /why and the turn log
report it and what it read, with no other file touched."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.commands import render_why
from bot.report import render_report
from bench.support.fakes import FakeOpenAI
from graph.observability.turn_log import turns_log_path
from graph.observability.why_report import turn_report
from memory.retrieval import mechanisms
from test_graph import NOW, history_jsonl, load_history, make_runner, with_model

CHAT = "garden"
TOY_MODULE = '''
"""A toy signal: the chat's first turn, for a message that ends in an exclamation mark."""

from memory.retrieval.mechanism import Mechanism, RecallRun
from memory.turns import archive_id


async def _first_turn(run: RecallRun):
    if not run.message.rstrip().endswith("!"):
        return None  # scored zero: it does not fire
    search, chat = run.question.reads, run.query.chat_id
    run.note["first_turn"] = archive_id(chat, 1)  # what it read, as every report shows it
    store = await search.l3.episodic()
    return [{**hit, "distance": 0.1} for hit in await search.l3.call(store.get_by_ids, [chat], [archive_id(chat, 1)])]


FIRST_TURN = Mechanism("first_turn", _first_turn, priority=-1)  # reported before any other list that found it
'''


@pytest.fixture
def toy_registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The toy mechanism's module, and the registry with one line more."""
    (tmp_path / "toy_mechanism.py").write_text(TOY_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    toy = importlib.import_module("toy_mechanism")
    monkeypatch.setattr(mechanisms, "MECHANISMS", (*mechanisms.MECHANISMS, toy.FIRST_TURN))
    return toy.FIRST_TURN.name


def inspect(message: str, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main(["inspect", "--chat", CHAT, "--json", message]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_registered_toy_mechanism_fires_fuses_and_is_reported(toy_registered, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GOAT_DATA_DIR", str(tmp_path / "data"))
    for variable in ("GOAT_REDIS_URL", "GOAT_CHROMA_URL", "GOAT_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    transcript = tmp_path / "history.jsonl"
    transcript.write_text(history_jsonl(CHAT), encoding="utf-8")
    assert main(["import", str(transcript)]) == 0

    report = inspect("Did the alpha-5675 migration go through!", capsys)
    prefetch = report["prefetch"]
    assert toy_registered in prefetch["fired"] and prefetch["found"][toy_registered] == 1
    [first] = [entry for entry in report["l3"] if entry["mechanism"] == toy_registered]
    assert "San Marzano" in first["content"]  # the chat's first turn, beside what the others found
    assert any("alpha-5675" in entry["content"] for entry in report["l3"])

    quiet = inspect("Did the alpha-5675 migration go through?", capsys)
    assert toy_registered not in quiet["prefetch"]["fired"]  # scored zero for this message
    assert all(entry["mechanism"] != toy_registered for entry in quiet["l3"])



async def test_what_a_toy_mechanism_read_shows_in_inspect_why_and_the_turn_log(toy_registered, settings, embeddings,
                                                                                tmp_path):
    message, read = "Did the alpha-5675 migration go through!", "alice-chat:turn_0001"
    with FakeOpenAI() as fake:
        runner = make_runner(with_model(settings, fake), embeddings)
        try:
            await runner.services.memory.connect(warm=True)
            await load_history(runner, tmp_path)
            report = turn_report(await runner.inspect("alice-chat", message, now=NOW.timestamp()))
            assert report["prefetch"][toy_registered] == read  # goat inspect --json
            assert f" · {toy_registered} {read}" in render_report(report)  # goat inspect
            fake.reply("It went through on Tuesday.")
            await runner.run("alice-chat", message, user_id="alice", now=NOW.timestamp())
            assert f" · {toy_registered} {read}" in render_why(await runner.last_turn("alice-chat"))  # /why
        finally:
            await runner.aclose()
    line = json.loads(turns_log_path(settings).read_text(encoding="utf-8").splitlines()[-1])
    assert line["prefetch"][toy_registered] == read  # the turn log
