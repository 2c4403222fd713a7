"""Which file `goat import` is given: a JSON Lines transcript, a Telegram Desktop export or a
ChatGPT one, told by its content or by the zip it came in, and how its document is opened."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import ijson

DOCUMENTS = {"telegram": "result.json", "chatgpt": "conversations.json"}  # the file each export's zip holds
_BOM = b"\xef\xbb\xbf"
_SNIFF_BYTES = 65_536
# What to do about an export made as HTML.
_AS_JSON = ("export the chat as JSON (Telegram Desktop: Format \"Machine-readable JSON\"; ChatGPT: the "
            "conversations.json in the zip)")
# A Telegram export's first key: "about" (the whole account) or one chat's ("name"; Saved Messages
# has none, so "type"); a JSON Lines transcript's objects have none of these.
_TELEGRAM_KEYS = {"about", "personal_information", "name", "type", "id", "messages", "chats"}


class ExportError(ValueError):
    """A file that cannot be read as the transcript or export it should be, as a whole: what to do
    about it, in a sentence (before anything is written)."""


@dataclass(frozen=True)
class ExportFile:
    """A file to import, its format, and the document inside it when it is a zip."""

    path: Path
    format: str  # "jsonl", "telegram" or "chatgpt"
    member: str | None = None  # the zip's member that holds the document

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        """The document's bytes, a UTF-8 byte-order mark skipped, read from the start."""
        with ExitStack() as stack:
            if self.member:
                file = stack.enter_context(stack.enter_context(zipfile.ZipFile(self.path)).open(self.member))
            else:
                file = stack.enter_context(self.path.open("rb"))
            if file.peek(len(_BOM))[:len(_BOM)] == _BOM:
                file.read(len(_BOM))
            yield file


def find_export(path: Path, format: str | None = None) -> ExportFile:
    """The file's format: ``format`` when given, else what its content shows (a zip holding a
    ``result.json`` or ``conversations.json``; a document that begins as Telegram's or ChatGPT's
    does; else JSON Lines). A folder is read for the export document it holds: Telegram
    Desktop's ChatExport folder, or a ChatGPT zip unpacked.

    Raises:
        ExportError: a zip or folder that holds no export, or both kinds without ``format`` to choose.
    """
    if path.is_dir():
        kind, document = _export_in(path, format)
        return ExportFile(document, kind)
    if zipfile.is_zipfile(path):
        if format == "jsonl":
            raise ExportError("a zip is read for the Telegram or ChatGPT export it holds, not JSON Lines")
        with zipfile.ZipFile(path) as archive:
            found = {kind: min((name for name in archive.namelist() if PurePosixPath(name).name == document),
                               key=lambda name: (name.count("/"), name), default=None)
                     for kind, document in DOCUMENTS.items() if format in (None, kind)}
        found = {kind: name for kind, name in found.items() if name}
        if not found:
            wanted = " or ".join(DOCUMENTS[kind] for kind in DOCUMENTS if format in (None, kind))
            raise ExportError(f"the zip holds no {wanted}: is it the export as downloaded?")
        if len(found) > 1:
            raise ExportError("the zip holds both a Telegram export (result.json) and a ChatGPT one "
                              "(conversations.json): say which with --format")
        [(kind, member)] = found.items()
        return ExportFile(path, kind, member)
    if format:
        return ExportFile(path, format)
    with path.open("rb") as file:
        head = file.read(_SNIFF_BYTES).removeprefix(_BOM).lstrip()
    if head.startswith(b"["):
        return ExportFile(path, "chatgpt")
    if head.startswith(b"<"):
        raise ExportError(f"it is HTML: {_AS_JSON}")
    return ExportFile(path, "telegram" if _first_key(head) in _TELEGRAM_KEYS else "jsonl")


def _first_key(head: bytes) -> str | None:
    """The first key of the JSON object ``head`` begins, if it begins one. Read without paths:
    however deep the head nests, its events are a few per byte."""
    try:
        for event, value in ijson.basic_parse(io.BytesIO(head)):
            if event == "map_key":
                return value
            if event != "start_map":
                return None
    except ijson.JSONError:  # the line is not JSON: JSON Lines' reader says where and why
        pass
    return None


def _export_in(folder: Path, format: str | None) -> tuple[str, Path]:
    """The export document directly in ``folder`` (``format``'s when given), and its kind."""
    found = [(kind, folder / document) for kind, document in DOCUMENTS.items()
             if format in (None, kind) and (folder / document).is_file()]
    if not found and format in (None, "telegram") and (folder / "messages.html").is_file():
        raise ExportError(f"a Telegram export as HTML (messages.html): {_AS_JSON}")
    if not found:
        wanted = " or ".join(DOCUMENTS[kind] for kind in DOCUMENTS if format in (None, kind)) or "export"
        raise ExportError(f"a folder, not a file, and it holds no {wanted}: name the file to import")
    if len(found) > 1:
        raise ExportError("the folder holds both a Telegram export (result.json) and a ChatGPT one "
                          "(conversations.json): say which with --format")
    return found[0]
