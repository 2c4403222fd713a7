"""The page's HTML, written by hand: every stored text goes through :func:`h` (escaped, so a
message holding ``<script>`` only shows), every link through :func:`href`, every change through
:func:`post_form` (a POST carrying the session's CSRF token)."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from string import Template
from urllib.parse import urlencode

TEMPLATES = Path(__file__).parent / "templates"


def h(text: object) -> str:
    """``text`` as HTML text: markup, quotes and all, shown and never run."""
    return html.escape(str(text), quote=True)


def href(path: str, **query: object) -> str:
    """A link to one of the page's own paths (never another site's), its query encoded, escaped
    for an attribute. Parameters given None are left out."""
    given = {name: value for name, value in query.items() if value is not None}
    return h(f"{path}?{urlencode(given)}" if given else path)


def link(path: str, text: str, **query: object) -> str:
    return f'<a href="{href(path, **query)}">{h(text)}</a>'


@lru_cache(maxsize=1)
def _page_template() -> Template:
    return Template((TEMPLATES / "page.html").read_text(encoding="utf-8"))


def page(title: str, body: str, nav: str = "") -> str:
    """A whole page: ``title`` is text (escaped here), ``body`` and ``nav`` are HTML made with
    this module's helpers."""
    return _page_template().substitute(title=h(title), body=body, nav=nav)


def post_form(action: str, csrf: str, fields: dict[str, str], button: str, *, css: str = "",
              inputs: str = "", confirm: str | None = None) -> str:
    """A form that changes something: a POST to ``action`` with the CSRF token and these hidden
    ``fields``, then ``inputs`` (HTML) and a button. ``confirm``: the question goat.js asks first."""
    hidden = "".join(f'<input type="hidden" name="{h(name)}" value="{h(value)}">' for name, value in fields.items())
    asked = f' data-confirm="{h(confirm)}"' if confirm else ""
    return (f'<form method="post" action="{h(action)}" class="{h(css)}"{asked}>'
            f'<input type="hidden" name="csrf" value="{h(csrf)}">{hidden}{inputs}'
            f'<button type="submit">{h(button)}</button></form>')


def text_block(text: str) -> str:
    """A stored text (a message, a reply, an entry) shown as it was written, line breaks kept."""
    return f'<pre class="text">{h(text)}</pre>'


def when(seconds: float | None) -> str:
    """A time as the page shows it: UTC, to the minute."""
    if seconds is None:
        return "—"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def table(head: list[str], rows: list[list[str]], css: str = "") -> str:
    """A table: ``head`` is text, each row's cells HTML already."""
    header = "".join(f"<th>{h(cell)}</th>" for cell in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{h(css)}"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def notice(text: str, kind: str = "info") -> str:
    return f'<p class="notice {h(kind)}" role="status">{h(text)}</p>'

