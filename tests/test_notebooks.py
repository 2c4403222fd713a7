"""The tuning notebooks run top to bottom, offline and headless, and are committed without outputs.

They are executed here with nbclient (``testpaths`` is ``tests``, so notebooks are not collected
by ``--nbmake`` on a plain ``pytest``; ``pytest --nbmake notebooks/`` works too), on their
default subset (``FULL_RUN = False``). They read the LoCoMo file from ``$GOAT_LOCOMO`` or
``../shared/data/locomo-dev.json``, or the bundled sample when neither is there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import locomo

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TUNING = NOTEBOOKS / "tuning.ipynb"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
SAMPLE = NOTEBOOKS / "data" / "locomo-sample.json"


def test_the_four_tuning_notebooks_are_there():
    assert [path.name for path in ALL] == ["aits_split.ipynb", "blend_weights.ipynb", "deadline.ipynb", "tuning.ipynb"]


@pytest.mark.parametrize("path", ALL, ids=lambda path: path.stem)
def test_notebook_is_committed_without_outputs(path: Path):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
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


def executed(path: Path) -> tuple[str, int]:
    """Run a notebook in memory (the file stays clean): its standard output, and how many plots."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.name == "stdout")
    return text, sum("image/png" in o.get("data", {}) for o in outputs)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tuning_notebook_runs_top_to_bottom():
    text, images = executed(TUNING)
    assert "cleaned up" in text
    # Each knob got its table of recall and tokens (the notebook itself asserts that every
    # inspection met a background, i.e. that the ratios are what decided).
    for knob in ("relevance_ratio", "lexical_relevance_ratio", "gap_significance"):
        assert re.search(rf"^\s*{knob}\s+evidence recall\s+.*L3 tokens\s+off-topic L3 tokens", text, re.M), knob
    assert images >= 1
    # Nothing left behind: the notebook's temporary folder is gone.
    work = re.search(r"embedded Redis and Chroma in (\S+)", text)
    assert work and not Path(work.group(1)).exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name, recommends", [
    ("aits_split", [r"^budget\.l2_floor_tokens = 500: binds on [\d.]+% ", r"^budget\.l3_min_guarantee_tokens = 1200: costs L2 \d+ tokens"]),
    ("blend_weights", [r"^the turn's L3 share: defaults .* recall [\d.]+%", r"^recommendation: keep the defaults"]),
    ("deadline", [r"^slowest prefetch here: [\d.]+ ms", r"^recommendation: keep prefetch\.timeout at 0\.5 s"]),
])
def test_each_notebook_ends_in_a_plot_and_a_recommendation(name: str, recommends: list[str]):
    text, images = executed(NOTEBOOKS / f"{name}.ipynb")
    assert images >= 1
    for pattern in recommends:
        assert re.search(pattern, text, re.M), pattern
    if work := re.search(r"embedded Redis and Chroma in (\S+)", text):
        assert "cleaned up" in text and not Path(work.group(1)).exists()
