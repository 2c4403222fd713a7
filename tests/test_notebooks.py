"""The tuning notebook runs top to bottom, offline and headless, and is committed without outputs.

It is executed here with nbclient (``testpaths`` is ``tests``, so notebooks are not collected
by ``--nbmake`` on a plain ``pytest``; ``pytest --nbmake notebooks/tuning.ipynb`` works too),
on its default subset (``FULL_RUN = False``). It reads the LoCoMo file from ``$GOAT_LOCOMO`` or
``../shared/data/locomo-dev.json``, or its bundled sample when neither is there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import locomo

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TUNING = NOTEBOOKS / "tuning.ipynb"
SAMPLE = NOTEBOOKS / "data" / "locomo-sample.json"


def test_notebook_is_committed_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(TUNING, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


def test_bundled_sample_is_one_conversation_of_four_sessions_with_its_questions():
    [record] = locomo.load(SAMPLE)
    assert locomo.sessions_of(record) == [1, 2, 3, 4]
    assert (SAMPLE.parent / "README.md").read_text().count("CC BY-NC 4.0") >= 1
    conversation = locomo.build_conversation(record)
    dialog_ids = set(conversation.dialog_to_entry)
    assert conversation.questions and all(set(q.evidence) <= dialog_ids for q in conversation.questions)
    assert conversation.answerable()


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
    first, adversarial = conversation.questions
    assert first.evidence == ["D1:3", "D2:1"] and adversarial.evidence == ["D1:2"]
    assert locomo.evidence_recall(first, {"c:turn_0002"}) == 0.5
    assert conversation.answerable() == [first]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tuning_notebook_runs_top_to_bottom():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(TUNING, as_version=4)  # executed in memory: the file stays clean
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    text = "\n".join(
        output.get("text", "")
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.outputs if output.output_type == "stream" and output.name == "stdout"
    )
    assert "cleaned up" in text
    # Each knob got its table of recall and tokens (the notebook itself asserts that every
    # inspection met a background, i.e. that the ratios are what decided).
    for knob in ("relevance_ratio", "lexical_relevance_ratio", "gap_significance"):
        assert re.search(rf"^\s*{knob}\s+evidence recall\s+.*L3 tokens\s+off-topic L3 tokens", text, re.M), knob
    images = sum("image/png" in output.get("data", {}) for cell in notebook.cells
                 if cell.cell_type == "code" for output in cell.outputs)
    assert images >= 1
    # Nothing left behind: the notebook's temporary folder is gone.
    work = re.search(r"embedded Redis and Chroma in (\S+)", text)
    assert work and not Path(work.group(1)).exists()
