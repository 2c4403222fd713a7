"""DeepSeek's DSML tool-call markup, found in a reply's text instead of in ``tool_calls``.

DeepSeek V3.1/V3.2 (and V4) models served without a tool parser write their calls as::

    <｜DSML｜function_calls>
    <｜DSML｜invoke name="get_weather">
    <｜DSML｜parameter name="city" string="true">Paris</｜DSML｜parameter>
    <｜DSML｜parameter name="days" string="false">3</｜DSML｜parameter>
    </｜DSML｜invoke>
    </｜DSML｜function_calls>

``string="true"`` is a literal string, ``string="false"`` a JSON value. Also seen in the
wild (sglang#40236, opencode#24566, mlx-lm#1337) and accepted here: ASCII ``|`` or doubled
bars; the block named ``tool_calls`` or ``calls``; no block at all (bare invokes); a block
or invoke never closed; a JSON object as the invoke's body instead of parameters; the
block tag missing its ``>``.
"""

from __future__ import annotations

import json
import re
from typing import Any, NotRequired, TypedDict

_BAR = r"[｜|]{1,2}"
_MARK = rf"{_BAR}\s*DSML\s*{_BAR}\s*"
_BLOCK_NAME = r"(?:function_calls|tool_calls|calls)"
_INVOKE_END = rf"</{_MARK}invoke\s*>|(?=<{_MARK}invoke\b)|(?=</?{_MARK}{_BLOCK_NAME}\b)|\Z"
_INVOKE = rf"<{_MARK}invoke\s+name\s*=\s*\"(?P<name>[^\"]*)\"\s*>(?P<body>.*?)(?:{_INVOKE_END})"

# A whole block, or an invoke outside any block: one pass, so calls keep their order.
_MARKUP = re.compile(
    rf"(?P<block><{_MARK}{_BLOCK_NAME}\b\s*>?.*?(?:</{_MARK}{_BLOCK_NAME}\s*>|\Z))|{_INVOKE}", re.S
)
_INVOKE_IN_BLOCK = re.compile(_INVOKE, re.S)
_PARAMETER = re.compile(
    rf"<{_MARK}parameter\s+name\s*=\s*\"(?P<name>[^\"]*)\"(?P<attrs>[^>]*)>(?P<value>.*?)"
    rf"(?:</{_MARK}parameter\s*>|(?=<{_MARK}parameter\b)|\Z)",
    re.S,
)
_STRING_ATTR = re.compile(r"string\s*=\s*\"(true|false)\"")
_STRAY_TAG = re.compile(rf"</?{_MARK}\w*[^<>]*>?")
_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")


class DsmlCall(TypedDict):
    name: str
    args: dict[str, Any]
    error: NotRequired[str]  # the call's arguments could not be read


def parse_dsml(text: str) -> tuple[str, list[DsmlCall]]:
    """(the text without any DSML markup, the calls it held, in order)."""
    if "DSML" not in text:
        return text, []
    calls: list[DsmlCall] = []

    def take(match: re.Match[str]) -> str:
        if match["block"] is not None:
            calls.extend(_call(invoke) for invoke in _INVOKE_IN_BLOCK.finditer(match["block"]))
        else:
            calls.append(_call(match))
        return ""

    visible = _STRAY_TAG.sub("", _MARKUP.sub(take, text))
    return _BLANK_LINES.sub("\n\n", visible).strip(), calls


def _call(invoke: re.Match[str]) -> DsmlCall:
    name, body = invoke["name"].strip(), invoke["body"]
    parameters = list(_PARAMETER.finditer(body))
    if parameters:
        return DsmlCall(name=name, args={p["name"]: _value(p["value"], p["attrs"]) for p in parameters})
    if not body.strip():
        return DsmlCall(name=name, args={})
    try:
        args = json.loads(body)
    except RecursionError:
        return DsmlCall(name=name, args={}, error="the arguments are nested too deeply to read")
    except ValueError:
        args = None
    if not isinstance(args, dict):
        return DsmlCall(name=name, args={}, error=f"the arguments are not a JSON object: {body.strip()[:200]!r}")
    return DsmlCall(name=name, args=args)


def _value(raw: str, attrs: str) -> Any:
    text = raw.strip()
    declared = _STRING_ATTR.search(attrs)
    if declared is not None and declared.group(1) == "true":
        return text
    try:  # string="false", or undeclared: a JSON value when it reads as one
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to read: the text
        return text


class DsmlStreamFilter:
    """Passes streamed text through until DSML markup starts, then holds everything back,
    so that a user watching the reply being written never sees the markup.

    ``feed`` returns what may be shown of each chunk; a tail that could be the start of a
    marker ("<", "<｜DS"…) is held until the next chunk tells."""

    def __init__(self) -> None:
        self._held = ""
        self._in_markup = False

    def feed(self, chunk: str) -> str:
        if self._in_markup:
            return ""
        text = self._held + chunk
        start = _MARKUP_START.search(text)
        if start is not None:
            self._in_markup, self._held = True, ""
            return text[: start.start()]
        held = _opening_tail(text)
        self._held = text[len(text) - held :]
        return text[: len(text) - held]

    def flush(self) -> str:
        """What is still held at the end of the stream (a "<" that began no markup)."""
        held, self._held = ("" if self._in_markup else self._held), ""
        return held


_MARKUP_START = re.compile(rf"</?{_MARK}")
_OPENINGS = tuple(f"<{slash}{bar * n}DSML{bar * n}" for slash in ("", "/") for bar in "｜|" for n in (1, 2))


def _opening_tail(text: str) -> int:
    """The length of the longest end of ``text`` that could still grow into a DSML marker."""
    for size in range(min(len(text), max(map(len, _OPENINGS))), 0, -1):
        if any(opening.startswith(text[-size:]) for opening in _OPENINGS):
            return size
    return 0
