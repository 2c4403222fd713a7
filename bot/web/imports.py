"""An export uploaded to the page, imported behind it as `goat import` imports a file (the same
reader and importer, ``graph/importing/``), its progress the import's own: turns done of the
transcript's turns. The upload is kept in a temporary folder outside the data folder while it is
read, and deleted once the import ends, whatever its end."""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import tempfile
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from graph.importing.export_files import ExportError, find_export
from graph.importing.exports import read_export
from graph.importing.importer import Transcript, TranscriptChanged, TranscriptError
from graph.replies import CHAT_OF_OTHERS, MEMORY_UNREACHABLE
from graph.runner import TurnRunner
from memory.turns import Standing
from nodes.state import InvalidTurn

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "telegram", "chatgpt")
MAX_JOBS = 100  # imports remembered for their progress page: the oldest finished one goes first
MAX_NAME_BYTES = 255  # the longest file name Linux's file systems keep


@dataclass
class ImportJob:
    """One upload's import, as its progress page shows it."""

    person: str  # whose it is: only they see its progress
    name: str  # the file's name, as uploaded
    state: str = "checking"  # checking, importing, done, failed
    done: int = 0
    total: int = 0
    lines: list[str] = field(default_factory=list)  # what it says when it ends

    def as_json(self) -> dict[str, object]:
        return {"state": self.state, "done": self.done, "total": self.total, "lines": self.lines}


@dataclass(frozen=True)
class Upload:
    """What the form sent: the file (saved), and how to read it."""

    path: Path
    format: str | None  # None: told by the content
    me: str | None
    into: str | None


class Imports:
    def __init__(self, runner: TurnRunner) -> None:
        self._runner = runner
        self._jobs: dict[str, ImportJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def job(self, job_id: str, person: str) -> ImportJob | None:
        """The job of this id, if it is this person's."""
        job = self._jobs.get(job_id)
        return job if job is not None and job.person == person else None

    def start(self, upload: Upload, name: str, person: str, *, only_theirs: bool) -> str:
        """Import the upload behind the page, into chats that hold no one else's turns. ``only_theirs``
        (server tokens): every message must be the person's, else nothing is imported, and the
        import is a claim, the chats theirs until someone a live door vouches for writes there
        (``memory/stores/chat_owners.py``). Returns the job's id."""
        job_id = secrets.token_urlsafe(12)
        while len(self._jobs) >= MAX_JOBS and (ended := [k for k, j in self._jobs.items() if j.state in ("done", "failed")]):
            del self._jobs[ended[0]]
        self._jobs[job_id] = job = ImportJob(person, name)
        task = asyncio.create_task(self._run(job, upload, only_theirs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job_id

    async def _run(self, job: ImportJob, upload: Upload, only_theirs: bool) -> None:
        try:
            me = await asyncio.to_thread(_as_whom, upload, job.person) if only_theirs else upload.me
            transcript = await asyncio.to_thread(read_export, upload.path, upload.format, me=me, into=upload.into)
            if only_theirs and (problem := await asyncio.to_thread(_not_theirs, transcript, job.person)):
                raise ExportError(problem)
            await self._import(job, transcript, Standing.CLAIMED if only_theirs else Standing.IMPORTED)
        except CHAT_OF_OTHERS as exc:
            instead = ("an import goes into a chat that is empty or yours" if only_theirs
                       else "`goat import --into CHAT` on the host chooses the chat")
            job.state, job.lines = "failed", [f"{upload.path.name}: {exc}: {instead}"]
        except (TranscriptError, ExportError, InvalidTurn, TranscriptChanged, *MEMORY_UNREACHABLE) as exc:
            job.state, job.lines = "failed", [f"{upload.path.name}: {exc}"]
        except Exception as exc:  # the page says what failed; the server serves on
            log.warning("goat web: an import failed: %s", type(exc).__name__)
            job.state, job.lines = "failed", [f"the import failed: {type(exc).__name__}"]
        finally:
            shutil.rmtree(upload.path.parent, ignore_errors=True)

    async def _import(self, job: ImportJob, transcript: Transcript, standing: Standing) -> None:
        from graph.importing.importer import import_turns

        memory = self._runner.services.memory
        job.state, job.total = "importing", transcript.turns

        def progress(more: int) -> None:
            job.done += more

        await memory.entries.check_import(transcript.people)  # before anything is written
        stats = await import_turns(memory, transcript, progress, standing=standing)
        await memory.admin.fill_languages()
        job.lines = [f"{stats['messages']} messages, {stats['turns']} turns: {stats['imported']} imported, "
                     f"{stats['skipped']} already there"]
        if transcript.omitted:
            job.lines.append("left out: " + ", ".join(f"{count} {kind}(s)" for kind, count in transcript.omitted.items()))
        job.state = "done"

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _as_whom(upload: Upload, person: str) -> str | None:
    """Whose messages an export's are on a shared page: the person's (a ChatGPT export's kept under
    their id, a Telegram export's read as theirs when their id is a Telegram one); a JSON Lines
    transcript names each message's user itself."""
    return None if find_export(upload.path, upload.format).format == "jsonl" else person


def _not_theirs(transcript: Transcript, person: str) -> str | None:
    """Why the transcript is not only the person's (None when it is): a message of another user."""
    if others := {turn.user_id for _, turn in transcript.imported_turns()} - {person}:
        return (f"it holds messages of other users ({', '.join(sorted(others))[:200]}): on a shared page you "
                f"import only your own, as {person} (for Telegram, your id; for ChatGPT, nothing to set)")
    return None


def upload_name_problem(name: str) -> str | None:
    """Why an upload's name cannot name the file it is kept as (None when it can): its last part is
    empty, "." or "..", holds a control character, is not UTF-8, or is longer than a file's name may
    be (:data:`MAX_NAME_BYTES`)."""
    last = Path(name).name
    if last in ("", ".", ".."):
        return f"The file name {name[:80]!r} names no file: rename the file and upload it again."
    if any(unicodedata.category(char) == "Cc" for char in last):
        return "The file name holds a control character: rename the file and upload it again."
    try:
        length = len(last.encode("utf-8"))
    except UnicodeEncodeError:
        return "The file name is not UTF-8: rename the file and upload it again."
    if length > MAX_NAME_BYTES:
        return f"The file name is over {MAX_NAME_BYTES} bytes long: rename the file shorter and upload it again."
    return None


async def saved_upload(name: str, chunks: AsyncIterator[bytes]) -> Path:
    """The uploaded file written to a new temporary folder (outside the data folder), under its own
    name's last part (one :func:`upload_name_problem` passed); the folder is removed if it fails."""
    folder = Path(tempfile.mkdtemp(prefix="goat-web-import-"))
    path = folder / Path(name).name
    try:
        with path.open("wb") as file:
            async for chunk in chunks:
                file.write(chunk)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return path
