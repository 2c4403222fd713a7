"""LoCoMo for `goat bench` and the tuning notebook: load conversations, turn them into a GOAT
transcript, and map LoCoMo dialog ids (``D3:7``) onto the L3 archive ids the import produces.

The data (Maharana et al., ACL 2024, CC BY-NC 4.0; https://github.com/snap-research/locomo,
``data/locomo10.json``) is read from ``$GOAT_LOCOMO`` or, by default, from
``../shared/data/locomo-dev.json`` beside the repository. When that file is absent, the synthetic
chats shipped in ``notebooks/data/`` (made by its ``make_dataset.py``, in LoCoMo's format) are
read instead.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from graph.importing.importer import TranscriptMessage, pair_turns
from memory.turns import archive_id

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PATH = REPO.parent / "shared" / "data" / "locomo-dev.json"
SYNTHETIC_PATH = REPO / "notebooks" / "data" / "synthetic-chats.json"
REALTALK_PATH = REPO.parent / "shared" / "data" / "realtalk-dev.json"  # chats between real people, LoCoMo's layout
ENV_VAR = "GOAT_LOCOMO"

__all__ = [
    "ANSWERABLE", "CATEGORY_NAMES", "DEFAULT_PATH", "ENV_VAR", "SYNTHETIC_PATH", "Conversation", "Question",
    "build_conversation", "data_path", "evidence_recall", "load", "make_sample", "message_text", "message_time",
    "normalise_evidence", "parse_iso_time", "parse_session_time", "sessions_of", "utterances",
]

# Categories 1-4 are answerable (multi-hop, temporal, open-domain, single-hop);
# 5 is adversarial: about things that never happened, so there is no evidence to find.
ANSWERABLE = (1, 2, 3, 4)
CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}

_SESSION = re.compile(r"^session_(\d+)$")
_DIALOG_ID = re.compile(r"^([DS]):?(\d+):(\d+)$")  # LongMemEval's messages are S<session>:<n>


def data_path(*, shared_copy: bool = True) -> tuple[Path, str]:
    """(the file to read, "LoCoMo" or "synthetic"). ``$GOAT_LOCOMO`` wins; then, with
    ``shared_copy``, ``../shared/data/locomo-dev.json``; the synthetic chats are the fallback."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_absolute() and not path.is_file():
            path = REPO / path  # relative to the repository when not to the working folder
        if not path.is_file():
            raise FileNotFoundError(f"{ENV_VAR}={explicit} does not name a file")
        return path, "synthetic" if path.resolve() == SYNTHETIC_PATH else "LoCoMo"
    if shared_copy and DEFAULT_PATH.is_file():
        return DEFAULT_PATH, "LoCoMo"
    return SYNTHETIC_PATH, "synthetic"


def load(path: Path | None = None) -> list[dict[str, Any]]:
    """The raw LoCoMo records (a list of conversations)."""
    path = path or data_path()[0]
    return json.loads(Path(path).read_text(encoding="utf-8"))


def parse_session_time(text: str) -> datetime:
    """LoCoMo's ``"1:56 pm on 8 May, 2023"`` as an aware UTC datetime."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=timezone.utc)


def parse_iso_time(text: str) -> datetime:
    """An ISO-8601 time as an aware datetime, a naive one read as UTC (as the import reads it)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def message_time(turn: dict[str, Any]) -> datetime | None:
    """The message's own ``timestamp``, if it has one."""
    return parse_iso_time(turn["timestamp"]) if "timestamp" in turn else None


def message_text(turn: dict[str, Any]) -> str:
    """The utterance; a shared photo is kept as its caption, as LoCoMo's own baselines do."""
    text = turn["text"].strip()
    caption = turn.get("blip_caption")
    return f"{text} [shares {caption}]" if caption else text


def utterances(records: list[dict[str, Any]]) -> list[str]:
    """Every utterance of every session, in order (realistic text to compose archives from)."""
    return [
        message_text(turn)
        for record in records
        for number in sessions_of(record)
        for turn in record["conversation"][f"session_{number}"]
    ]


def normalise_evidence(evidence: list[str]) -> list[str]:
    """Dialog ids as ``D<session>:<n>`` (``S…`` kept); a few records hold ``"D8:6; D9:17"`` or ``"D:11:26"``."""
    ids = []
    for item in evidence:
        for part in re.split(r"[;,\s]+", str(item)):
            match = _DIALOG_ID.match(part.strip())
            if match:
                ids.append(f"{match.group(1)}{match.group(2)}:{match.group(3)}")
    return list(dict.fromkeys(ids))


@dataclass
class Question:
    text: str
    answer: str
    category: int | str  # LoCoMo's number (CATEGORY_NAMES), or LongMemEval's question type
    evidence: list[str]  # dialog ids, e.g. ["D1:3"]
    evidence_map: dict[str, str] = field(default_factory=dict)  # dialog id -> archive id, imported ones only

    @property
    def evidence_ids(self) -> set[str]:
        """The archive entries holding the evidence (two dialog ids may share one turn)."""
        return set(self.evidence_map.values())


@dataclass
class Conversation:
    sample_id: str
    chat_id: str
    speakers: tuple[str, str]  # (speaker A = "user", speaker B = "assistant")
    messages: list[dict[str, Any]]  # the JSONL records for `goat import`, in order
    dialog_to_entry: dict[str, str]  # "D3:7" -> archive id of the turn holding it
    questions: list[Question]
    sessions: int
    last_time: datetime  # timestamp of the last message
    said_at: dict[str, datetime] = field(default_factory=dict)  # dialog id -> when it was said
    # Who asks its questions: the user whose chat it is (named: speaker A), so that asking makes
    # no one new a person of the chat; named, the chat holding plain top-k's "Name: text" entries,
    # turn for turn the same as its own.
    asker: str | None = None
    plain_chat_id: str | None = None

    @property
    def turns(self) -> int:
        return len(set(self.dialog_to_entry.values()))

    def jsonl(self) -> str:
        return "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in self.messages)

    def plain_jsonl(self) -> str:
        """Plain top-k's chat: each message as "Name: text" (what a LangChain user would index),
        unnamed, in the same turns."""
        return "".join(json.dumps({**{k: v for k, v in m.items() if k != "name"}, "chat_id": self.plain_chat_id,
                                   "content": f"{m['name']}: {m['content']}"}, ensure_ascii=False) + "\n"
                       for m in self.messages)

    def answerable(self) -> list[Question]:
        """Questions of categories 1-4 with at least one evidence turn in the imported sessions."""
        return [q for q in self.questions if q.category in ANSWERABLE and q.evidence_map]


def sessions_of(record: dict[str, Any]) -> list[int]:
    conversation = record["conversation"]
    numbers = [int(m.group(1)) for key in conversation if (m := _SESSION.match(key))]
    return sorted(n for n in numbers if isinstance(conversation[f"session_{n}"], list) and conversation[f"session_{n}"])


def build_conversation(
    record: dict[str, Any], *, chat_id: str | None = None, max_sessions: int | None = None,
    user_id: str = "locomo", named: bool = False,
) -> Conversation:
    """Speaker A as "user", B as "assistant"; a message is dated its own ``timestamp`` where it has
    one (REALTALK's: a session there spans days), else its session's LoCoMo date-time and one
    minute after the previous message. Consecutive A→B messages form one turn (exactly as
    ``goat import`` pairs them), and the turn numbers are those of a fresh chat. ``named``: each
    speaker a person of their own, as a chat between people imports (role "user", their own
    ``user_id``, their ``name`` beside the text): every message a turn of its own."""
    conversation = record["conversation"]
    speaker_a, speaker_b = conversation["speaker_a"], conversation["speaker_b"]
    chat_id = chat_id or f"locomo-{record.get('sample_id', 'conversation')}"
    numbers = sessions_of(record)
    if max_sessions is not None:
        numbers = numbers[:max_sessions]
    messages: list[dict[str, Any]] = []
    dialog_ids: list[str] = []
    said_at: dict[str, datetime] = {}
    last_time = None
    for number in numbers:
        start = parse_session_time(conversation[f"session_{number}_date_time"])
        for i, turn in enumerate(conversation[f"session_{number}"]):
            if turn["speaker"] not in (speaker_a, speaker_b):
                raise ValueError(f"{turn['dia_id']}: unknown speaker {turn['speaker']!r}")
            when = message_time(turn) or start + timedelta(minutes=i)
            last_time = when
            messages.append({
                "chat_id": chat_id,
                "user_id": f"{user_id}:{turn['speaker']}" if named else user_id,
                **({"name": turn["speaker"]} if named else {}),
                "role": "user" if named or turn["speaker"] == speaker_a else "assistant",
                "content": message_text(turn),
                "timestamp": when.isoformat(),
            })
            dialog_ids.append(turn["dia_id"])
            said_at[turn["dia_id"]] = when
    if last_time is None:
        raise ValueError(f"{record.get('sample_id')}: no sessions")

    # Pair the messages with the importer's own rule, so the turn numbers are the ones it assigns.
    parsed = [
        TranscriptMessage(chat_id, m["user_id"], m["role"], m["content"], datetime.fromisoformat(m["timestamp"]).timestamp())
        for m in messages
    ]
    turns = pair_turns(parsed)[chat_id]
    dialog_to_entry: dict[str, str] = {}
    position = 0
    for number, turn in enumerate(turns, start=1):
        for _ in turn:
            dialog_to_entry[dialog_ids[position]] = archive_id(chat_id, number)
            position += 1
    assert position == len(dialog_ids)

    questions = []
    for qa in record.get("qa", []):
        evidence = normalise_evidence(qa.get("evidence") or [])
        questions.append(Question(
            text=qa["question"],
            answer=str(qa.get("answer", qa.get("adversarial_answer", ""))),
            category=int(qa["category"]) if str(qa["category"]).isdigit() else str(qa["category"]),
            evidence=evidence,
            evidence_map={d: dialog_to_entry[d] for d in evidence if d in dialog_to_entry},
        ))
    return Conversation(
        sample_id=str(record.get("sample_id", chat_id)),
        chat_id=chat_id,
        speakers=(speaker_a, speaker_b),
        messages=messages,
        dialog_to_entry=dialog_to_entry,
        questions=questions,
        sessions=len(numbers),
        last_time=last_time,
        said_at=said_at,
        asker=f"{user_id}:{speaker_a}" if named else user_id,
        plain_chat_id=f"{chat_id}-plain" if named else None,
    )


def evidence_recall(question: Question, injected_ids: set[str]) -> float:
    """Share of the question's evidence dialog ids (those in the imported sessions) whose turn
    is among ``injected_ids``."""
    if not question.evidence_map:
        return 0.0
    return sum(entry in injected_ids for entry in question.evidence_map.values()) / len(question.evidence_map)


def make_sample(record: dict[str, Any], sessions: int = 4) -> dict[str, Any]:
    """One conversation cut down to its first ``sessions`` sessions and the questions whose
    evidence all lies in them (a small file for tests)."""
    numbers = sessions_of(record)[:sessions]
    kept_ids = {t["dia_id"] for n in numbers for t in record["conversation"][f"session_{n}"]}
    conversation = {"speaker_a": record["conversation"]["speaker_a"], "speaker_b": record["conversation"]["speaker_b"]}
    for n in numbers:
        conversation[f"session_{n}_date_time"] = record["conversation"][f"session_{n}_date_time"]
        conversation[f"session_{n}"] = [
            {k: v for k, v in t.items() if k in ("speaker", "dia_id", "text", "blip_caption")}
            for t in record["conversation"][f"session_{n}"]
        ]
    qa = [
        q for q in record.get("qa", [])
        if (ev := normalise_evidence(q.get("evidence") or [])) and set(ev) <= kept_ids
    ]
    return {"sample_id": record.get("sample_id"), "conversation": conversation, "qa": qa}


def realtalk_conversation(chat: dict[str, Any], named: bool = True) -> Conversation:
    """A REALTALK chat as its own GOAT chat, as `goat import` would store it: a chat between two
    people, each speaker named apart from the text (``named``), or speaker A's lines the user's and
    B's the assistant's, paired into turns."""
    return build_conversation(chat, chat_id=f"realtalk-{chat['sample_id']}", user_id="realtalk", named=named)
