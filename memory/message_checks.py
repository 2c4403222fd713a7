"""What every way in refuses of a message (a live turn, a line of `goat import`, MCP's
archive_turn) and of a speaker's name: empty, too long, or not valid Unicode."""

from __future__ import annotations

import unicodedata

# What every way in refuses of a message (a live turn, a line of `goat import`, MCP's archive_turn),
# and what an imported turn checks again.
MAX_MESSAGE_CHARS = 200_000
NOT_UNICODE = "holds text that is not valid Unicode (lone surrogates)"


MAX_NAME_CHARS = 200  # a speaker's display name (Telegram's first and last names take 64 each)


def name_problem(name: object) -> str | None:
    """Why a speaker's display name cannot be taken ("must be a string", "is empty", too long, not
    Unicode); None when it can. What it holds is the prompt's to render safely, not refused here."""
    return "must be a string" if not isinstance(name, str) else _text_problem(name, MAX_NAME_CHARS)


def usable_name(name: str | None) -> str | None:
    """A name a client gives (a Telegram sender's) as a turn takes it: cut to the limit, None when
    it cannot be taken (blank, broken Unicode), so that no one's name ever stops their turn."""
    name = None if name is None else name[:MAX_NAME_CHARS]
    return name if name is not None and name_problem(name) is None else None


def clean_text(text: str) -> str:
    """Replace lone surrogates (not encodable as UTF-8, e.g. from broken clients) with U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def is_blank(text: str) -> bool:
    """Whether a text shows nothing: only white space and invisible format characters (zero-width
    spaces and joiners, a byte-order mark, direction marks), which look empty wherever it is read."""
    return all(char.isspace() or unicodedata.category(char) == "Cf" for char in text)


def message_problem(text: str) -> str | None:
    """Why a message cannot be taken, as every way in refuses it (a live turn, a line of `goat
    import`, MCP's archive_turn): "is empty", "has N characters; the limit is …" or "holds text
    that is not valid Unicode (lone surrogates)" (a broken client's, never guessed at); None when
    it can."""
    return _text_problem(text, MAX_MESSAGE_CHARS)


def _text_problem(text: str, limit: int) -> str | None:
    if is_blank(text):
        return "is empty"
    if len(text) > limit:
        return f"has {len(text)} characters; the limit is {limit}"
    if clean_text(text) != text:
        return NOT_UNICODE
    return None
