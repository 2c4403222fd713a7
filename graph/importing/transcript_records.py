"""What a transcript's messages read as (a message, a refusal of one, one left out) and how an
import refuses a transcript or stops: the records :mod:`graph.importing.importer` and the
exports' readers (:mod:`graph.importing.exports`) share."""

from __future__ import annotations

from dataclasses import dataclass


class TranscriptError(ValueError):
    """Transcript messages that cannot be imported; the message names the first (it starts with
    where it is) and counts the others."""

    def __init__(self, first: Refusal, others: int = 0, unit: str = "line") -> None:
        self.first, self.unit = first, unit
        more = f" (and {others} more invalid {unit}{'' if others == 1 else 's'})" if others else ""
        super().__init__(f"{first}{more}")


class TranscriptChanged(ValueError):
    """A line that was valid when the file was checked no longer is: the file changed while it was
    imported (what came before the line is imported)."""


class ImportStopped(Exception):
    """The import was asked to stop and stopped between two batches (or before any): what it wrote
    is whole. ``imported`` turns were written now, ``skipped`` were there already."""

    def __init__(self, imported: int, skipped: int) -> None:
        super().__init__(f"stopped with {imported} turn(s) imported")
        self.imported, self.skipped = imported, skipped


@dataclass(frozen=True)
class TranscriptMessage:
    chat_id: str
    user_id: str
    role: str
    content: str
    timestamp: float
    ref: str | None = None  # which message of its export it is, when the export says (an edit keeps it)
    name: str | None = None  # the speaker's display name, when the transcript gives one


@dataclass(frozen=True)
class Refusal:
    """A message of a transcript that cannot be imported: where it is ("line 3", "chat 42,
    message 7") and why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class Omitted:
    """A message an export holds that is not a message to remember (a service message, a tool's
    output), left out and counted by ``kind``."""

    kind: str


Read = TranscriptMessage | Refusal | Omitted | None  # what a message of a source reads as; None: nothing (a blank line)
