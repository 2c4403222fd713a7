"""The bounds on JSON that comes from outside (a file `goat import` or `goat web` reads, an MCP
request, a value the Store is given), and the checks that hold them, over the bytes before a
parser reads them: how deep arrays and objects nest, how large one value read whole is, and how
long a number runs.

Unchecked, a parser's work and memory outgrow its input: ijson builds each event's path
(``item.item.…``) for every event of its 64 KB read buffer at once, so a depth of d costs d² (and
a long key repeated, its length times the buffer's events); a number spread over reads is read
again at each; a value read whole holds up to 24 times its bytes as Python objects.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Iterator
from itertools import accumulate
from typing import IO, Any

import ijson
from ijson.utils import sendable_list

MAX_DEPTH = 64  # arrays and objects inside one another: Telegram's exports nest 5 levels, ChatGPT's 8
# One value read whole (a JSON Lines line, a Telegram message, a ChatGPT conversation, an MCP
# request), and so any string: a message holds at most 200 000 characters, 2.4 MB escaped.
MAX_VALUE_BYTES = 16 << 20
# The values (strings, numbers, arrays, objects) in one value read whole, counted by the commas
# and brackets between them (an empty array or object counts twice): what its Python objects take
# grows with them (an empty object is 3 bytes of JSON, a 64-byte dict). A ChatGPT message node
# holds about 50.
MAX_VALUE_ITEMS = 500_000
PIECE_BYTES = 64 << 10  # what a document is read and scanned by
# A number (or true, false, null) run on from one piece into the next: ijson reads it again at each.
MAX_NUMBER_BYTES = PIECE_BYTES

_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # in a string: \" holds no quote, \\ no escape
_STRING = re.compile(rb'"[^"]*"')  # a string once its escapes are blanked
_NUMBER_BYTES = (string.ascii_letters + string.digits + "+-.").encode()  # a number's, or true's, false's, null's
_BRACKETS = re.compile(rb'"[^"]*"?|[\[\]{}]')  # a string passed over, or a bracket
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b"[]{},")))
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1
_MB = MAX_VALUE_BYTES >> 20
_NOT_A_VALUE = {"map_key", "end_map", "end_array"}  # the events that begin no value
PARSER = ijson.get_backend(ijson.backend)  # ijson's fastest here: its parser in C


class JsonBeyondLimits(ValueError):
    """JSON past one of the bounds: which, and the byte where it is passed (None: a value parsed
    already)."""

    def __init__(self, reason: str, offset: int | None) -> None:
        super().__init__(reason if offset is None else f"{reason} at byte {offset}")
        self.reason, self.offset = reason, offset


TOO_DEEP = f"JSON nested deeper than {MAX_DEPTH} levels"
LONG_NUMBER = f"a JSON number over {MAX_NUMBER_BYTES} bytes"


class JsonTooLarge(JsonBeyondLimits):
    """A value read whole (``what``: "a message") past its size."""

    def __init__(self, what: str, offset: int | None) -> None:
        super().__init__(f"{what} holds over {_MB} MB or {MAX_VALUE_ITEMS} values of JSON", offset)


class JsonScan:
    """JSON text checked as its bytes pass, a piece at a time (brackets, commas and quotes inside
    strings are text): raises :class:`JsonBeyondLimits` at the first byte past a bound. Holds none
    of the text: its counts, and whether a string or a number runs on into the next piece."""

    def __init__(self) -> None:
        self.offset = 0  # bytes scanned
        self.items = 0  # arrays and objects opened, and commas: about the values begun
        self.depth = 0
        self._in_string = self._escaped = False
        self._token_start = 0  # where the string or number running on at the last piece's end began
        self._number = 0  # the bytes of the number running on at the last piece's end

    def feed(self, piece: bytes) -> None:
        if not piece:
            return
        start, self.offset = self.offset, self.offset + len(piece)
        text = _ESCAPE.sub(b"__", piece[1:] if self._escaped else piece)  # positions kept
        text = b"_" + text if self._escaped else text
        self._escaped = text.endswith(b"\\")  # a string's escape, its escaped byte in the next piece
        skipped = 0
        if self._in_string:
            skipped = text.find(b'"') + 1
            self._check_string(start + skipped if skipped else self.offset)
            if not skipped:
                return
            self._in_string = False
        outside = _STRING.sub(b"", text[skipped:])
        if (opened := outside.find(b'"')) >= 0:  # a string runs on into the next piece
            self._in_string, self._token_start = True, self.offset - (len(outside) - opened)
            outside = outside[:opened]
        self._follow_number(outside)
        structure = outside.translate(None, _NOT_STRUCTURE)
        self.items += len(structure) - structure.count(b"]") - structure.count(b"}")
        if structure and max(accumulate(map(_STEP.__getitem__, structure), initial=self.depth)) > MAX_DEPTH:
            raise JsonBeyondLimits(TOO_DEEP, start + self._too_deep_at(text, skipped))
        self.depth += sum(map(_STEP.__getitem__, structure))

    def _check_string(self, end: int) -> None:
        if end - self._token_start > MAX_VALUE_BYTES:
            raise JsonBeyondLimits(f"a JSON string over {_MB} MB", self._token_start)

    def _follow_number(self, outside: bytes) -> None:
        """A number run on from the last piece refused past the bound; one at this piece's end kept."""
        lead = len(outside) - len(outside.lstrip(_NUMBER_BYTES))
        if self._number and self._number + lead > MAX_NUMBER_BYTES:
            raise JsonBeyondLimits(LONG_NUMBER, self._token_start)
        trail = 0 if self._in_string else len(outside) - len(outside.rstrip(_NUMBER_BYTES))
        if self._number and lead == len(outside):
            self._number += lead
        elif trail:
            self._number, self._token_start = trail, self.offset - trail
        else:
            self._number = 0

    def _too_deep_at(self, text: bytes, skipped: int) -> int:
        """Where in the piece the bracket one level too deep is (its tokens read one by one)."""
        depth = self.depth
        for token in _BRACKETS.finditer(text, skipped):
            depth += _STEP[text[token.start()]]
            if depth > MAX_DEPTH:
                return token.start()
        return 0


def check_json(text: bytes, what: str) -> None:
    """A whole JSON value given at once (a line, a request) within the bounds; scanned only when its
    brackets and commas alone could pass them.

    Raises:
        JsonBeyondLimits: which bound it passes, and where.
    """
    if len(text) > MAX_VALUE_BYTES:
        raise JsonTooLarge(what, 0)
    opened = text.count(b"[") + text.count(b"{")
    if opened <= MAX_DEPTH and opened + text.count(b",") <= MAX_VALUE_ITEMS:
        return
    scan = JsonScan()
    scan.feed(text)
    if scan.items > MAX_VALUE_ITEMS:
        raise JsonTooLarge(what, 0)


def check_value(value: object, what: str) -> None:
    """A value parsed already (the Store's, by LangGraph's server) within the same bounds: its
    depth, its values, and its strings' characters counted as bytes.

    Raises:
        JsonBeyondLimits: which bound it passes.
    """
    items = chars = 0
    stack = [(value, 1)]  # a value, and its depth if it holds others
    while stack:
        item, depth = stack.pop()
        items += 1
        if isinstance(item, str):
            chars += len(item)
        elif isinstance(item, (dict, list, tuple)):
            if depth > MAX_DEPTH:
                raise JsonBeyondLimits(TOO_DEEP, None)
            stack.extend((child, depth + 1) for child in ([*item, *item.values()] if isinstance(item, dict) else item))
        if items > MAX_VALUE_ITEMS or chars > MAX_VALUE_BYTES:
            raise JsonTooLarge(what, None)


class ScannedFile:
    """A binary file read through a :class:`JsonScan`: every piece is checked before it is handed
    on, a piece at most :data:`PIECE_BYTES`."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file, self.scan = file, JsonScan()

    def read(self, size: int = -1) -> bytes:
        piece = self.file.read(PIECE_BYTES if size < 0 else min(size, PIECE_BYTES))
        self.scan.feed(piece)
        return piece


JsonPath = tuple[str, ...]  # a value's place in a document: its keys, and "item" for an array's items, from the top


def json_events(file: IO[bytes], held: Collection[JsonPath] = (), what: str = "a value",
                backend: Any = PARSER) -> Iterator[tuple[JsonPath, str, Any]]:
    """The parse events of the JSON document ``file`` holds, each with its path as ijson gives
    it, but a tuple: made in steps bounded by the depth, however long the keys (ijson builds
    each event's path as a string, copying the keys; a long key repeated copied again and again).
    Every piece of the file is checked (:class:`JsonScan`) before it is parsed.

    Args:
        held: the paths whose values are read whole: each comes as one event, ``"value"``, the
            value built (by the backend, from events given no path), refused past
            :data:`MAX_VALUE_BYTES` or :data:`MAX_VALUE_ITEMS` (to within a piece) as ``what``
            (e.g. "a message").
        backend: one of ijson's: its parser in C (the default), or in Python.
    Raises:
        JsonBeyondLimits: the document passes a bound, where it is read.
    """
    scanned, built = ScannedFile(file), sendable_list()
    scan, path = scanned.scan, ()
    building: Any = None  # the backend's builder of a held value, while one is read
    bytes_until = items_until = 0  # where the held value being read passes its bounds, surely
    for event, value in backend.basic_parse(scanned, use_float=True):
        if building is None and path in held and event not in _NOT_A_VALUE:
            building = backend.items_basecoro(built, "")
            # The scan runs up to a piece ahead of the events: a value is refused once it surely passes.
            bytes_until = scan.offset + MAX_VALUE_BYTES + PIECE_BYTES
            items_until = scan.items + MAX_VALUE_ITEMS + PIECE_BYTES
        if building is not None:
            building.send(("", event, value))
            if built:
                yield path, "value", built.pop()
                building = None
            elif scan.offset > bytes_until or scan.items > items_until:
                raise JsonTooLarge(what, scan.offset)
            continue
        if event == "map_key":
            yield path[:-1], event, value
            path = path[:-1] + (value,)
            continue
        if event in ("end_map", "end_array"):
            path = path[:-1]
        yield path, event, value
        if event == "start_map":
            path += ("",)  # its first key replaces it
        elif event == "start_array":
            path += ("item",)
