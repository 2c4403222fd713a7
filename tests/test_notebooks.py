"""The tuning notebooks and the chats they run on.

The shipped chats (``notebooks/data/synthetic-chats.json``) are exactly what
``notebooks/data/make_dataset.py`` makes, in LoCoMo's format, labelled and long enough to teach.
The notebooks are committed without outputs and run top to bottom, offline and headless, on their
default subset (``FULL_RUN = False``) of those chats, through ``notebooks/execute.py`` (what `make
notebooks` runs; ``testpaths`` is ``tests``, so a plain ``pytest`` does not collect the notebooks
themselves). Each must show one figure whose curve is not flat and end in a recommendation.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

from bench.support import locomo

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
PNG_MAGIC = b"\x89PNG"


def module(path: Path) -> ModuleType:
    """A script of ``notebooks/`` (not a package), imported from its file."""
    name = f"notebooks_{path.stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def test_the_four_tuning_notebooks_are_there():
    assert [path.name for path in ALL] == ["aits_split.ipynb", "blend_weights.ipynb", "deadline.ipynb", "tuning.ipynb"]


@pytest.mark.parametrize("path", ALL, ids=lambda path: path.stem)
def test_notebook_is_committed_without_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


def test_the_shipped_chats_are_what_the_generator_makes():
    generator = module(NOTEBOOKS / "data" / "make_dataset.py")
    assert generator.OUTPUT == locomo.SYNTHETIC_PATH
    assert generator.build().encode() == locomo.SYNTHETIC_PATH.read_bytes()


def test_the_shipped_chats_are_long_labelled_and_paraphrased():
    records = locomo.load(locomo.SYNTHETIC_PATH)
    assert len(records) >= 4
    for record in records:
        conversation = locomo.build_conversation(record)
        assert conversation.sessions >= 10 and conversation.turns >= 150
        days = (conversation.last_time - min(conversation.said_at.values())).days
        assert days >= 60, "evidence must spread over weeks, beyond the 30-day recency window"
        questions = conversation.answerable()
        assert questions == conversation.questions  # every evidence id names a line of the chat
        assert set(Counter(q.category for q in questions)) == set(locomo.ANSWERABLE)
        lines = {turn["dia_id"]: turn["text"] for n in locomo.sessions_of(record)
                 for turn in record["conversation"][f"session_{n}"]}
        for question in questions:
            # A paraphrase: the question is not in its evidence lines word for word.
            assert not any(question.text.rstrip("?").lower() in lines[d].lower() for d in question.evidence)
            if question.category == 1:  # multi-hop: turns of two sessions or more
                assert len({d.split(":")[0] for d in question.evidence}) >= 2, question.text
        # Dated questions name a session's date or "last week", for the temporal mechanism.
        assert any(q.category == 2 and re.search(r"\d{4}\?$|last week\?$", q.text) for q in questions)


def test_the_notebooks_read_the_shipped_chats_unless_locomo_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv(locomo.ENV_VAR, raising=False)
    assert locomo.data_path(shared_copy=False) == (locomo.SYNTHETIC_PATH, "synthetic")
    elsewhere = tmp_path / "locomo10.json"
    elsewhere.write_text("[]")
    monkeypatch.setenv(locomo.ENV_VAR, str(elsewhere))
    assert locomo.data_path(shared_copy=False) == (elsewhere, "LoCoMo")
    assert locomo.data_path() == (elsewhere, "LoCoMo")


def test_dialog_ids_map_onto_the_importers_turns():
    record = {
        "sample_id": "t",
        "conversation": {
            "speaker_a": "Ann", "speaker_b": "Bob",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Bob", "dia_id": "D1:1", "text": "hello"},  # B first: archived alone
                {"speaker": "Ann", "dia_id": "D1:2", "text": "hi Bob"},
                {"speaker": "Bob", "dia_id": "D1:3", "text": "look", "blip_caption": "a photo of a dog"},
                {"speaker": "Ann", "dia_id": "D1:4", "text": "bye"},
            ],
            "session_2_date_time": "10:00 am on 9 May, 2023",
            "session_2": [{"speaker": "Ann", "dia_id": "D2:1", "text": "back"}],
        },
        "qa": [
            {"question": "q?", "answer": "a", "category": 4, "evidence": ["D1:3; D2:1"]},
            {"question": "x?", "category": 5, "evidence": ["D:1:2"], "adversarial_answer": "no"},
        ],
    }
    conversation = locomo.build_conversation(record, chat_id="c")
    assert conversation.dialog_to_entry == {
        "D1:1": "c:turn_0001", "D1:2": "c:turn_0002", "D1:3": "c:turn_0002",
        "D1:4": "c:turn_0003", "D2:1": "c:turn_0004",
    }
    assert conversation.messages[2]["content"] == "look [shares a photo of a dog]"
    assert conversation.messages[1]["timestamp"] == "2023-05-08T13:57:00+00:00"
    assert conversation.said_at["D2:1"].isoformat() == "2023-05-09T10:00:00+00:00"
    first, adversarial = conversation.questions
    assert first.evidence == ["D1:3", "D2:1"] and adversarial.evidence == ["D1:2"]
    assert locomo.evidence_recall(first, {"c:turn_0002"}) == 0.5
    assert conversation.answerable() == [first]


def check_tuning(text: str) -> None:
    for knob in ("relevance_ratio", "lexical_relevance_ratio", "gap_significance"):
        assert re.search(rf"^\s*{knob}\s+evidence recall\s+.*L3 tokens\s+off-topic L3 tokens", text, re.M), knob
    table = text[text.index("relevance_ratio  evidence recall"):text.index("lexical_relevance_ratio  evidence recall")]
    rows = re.findall(r"^\s*([\d.]+)(?: \(default\))?\s+([\d.]+)%\s+[\d.]+%\s+(\d+)\s+(\d+)", table, re.M)
    recall = [float(row[1]) for row in rows]
    off_topic = [int(row[3]) for row in rows]
    assert len(rows) >= 5 and max(recall) > min(recall)  # the curve is not flat
    assert off_topic[-1] > off_topic[0]  # the widest ratio costs off-topic tokens: the trade-off


def check_blend_weights(text: str) -> None:
    table = re.findall(r"^\s*([\d.]+)(?: \(default\))?((?:\s+[\d.]+% @\d+){4})$", text, re.M)
    assert len(table) >= 5
    tightest = [float(re.findall(r"([\d.]+)% @", cells)[-1]) for _, cells in table]
    assert tightest[0] > tightest[-1], "recency costs recall where the share is tight"
    old, recent = re.search(r"^(\d+) of (\d+) evidence turns are older than the recency window", text, re.M).groups()
    assert 0 < int(old) < int(recent)


def check_aits_split(text: str) -> None:
    [end_share] = [int(m) for m in re.findall(r"by its end, (\d+)% of it", text)]
    assert end_share < 100, "the chats outgrow L2"
    assert re.search(r"^budget\.l2_floor_tokens = \d+: binds on [\d.]+% ", text, re.M)
    assert re.search(r"^budget\.l3_min_guarantee_tokens = \d+: costs L2 \d+ tokens", text, re.M)


def check_deadline(text: str) -> None:
    for kind in ("thematic", "temporal", "specific_key"):
        assert re.search(rf"^\s*{kind}\s+waited for L3\s+[\d.]+", text, re.M), kind
    assert re.search(r"^prefetch here: p95 [\d.]+ ms, slowest [\d.]+ ms", text, re.M)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name, check", [
    ("tuning", check_tuning), ("blend_weights", check_blend_weights),
    ("aits_split", check_aits_split), ("deadline", check_deadline),
])
def test_each_notebook_shows_a_figure_that_is_not_flat_and_a_recommendation(name, check, monkeypatch):
    monkeypatch.delenv(locomo.ENV_VAR, raising=False)  # the kernel inherits the environment: the shipped chats
    execute = module(NOTEBOOKS / "execute.py")
    notebook = execute.execute(name)
    text = execute.printed(notebook)
    [figure] = execute.figures(notebook)
    assert figure.startswith(PNG_MAGIC)
    assert "data: synthetic-chats.json (synthetic)" in text
    check(text)
    assert re.search(r"^recommendation: ", text, re.M)
    # Nothing left behind: the notebook's scratch folder is gone.
    if work := re.search(r"embedded Redis and Chroma in (\S+)", text):
        assert "cleaned up" in text and not Path(work.group(1)).exists()
