"""The pages' bodies, from what the routes (``app.py``) read through memory's doors: plain data
in, HTML out, every stored text escaped (``html.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.web import charts
from bot.web.html import h, href, link, notice, post_form, table, text_block, when
from graph.observability.why_report import TurnReport
from memory.turns import USER_PREFIX, Hit, Verdict, turn_parts


@dataclass(frozen=True)
class ChatRow:
    chat_id: str
    entries: int  # turns and notes in its archive
    last: float | None
    languages: list[str]


@dataclass(frozen=True)
class Viewer:
    """Who looks, as the pages need it: their name, whether they see everyone's, their CSRF token."""

    person: str
    operator: bool
    csrf: str


def nav(viewer: Viewer) -> str:
    people = link("/people", "people") if viewer.operator else link("/person", "my facts", u=viewer.person)
    signed = f'<span class="who">{h(viewer.person)}{" (operator)" if viewer.operator else ""}</span>'
    leave = post_form("/logout", viewer.csrf, {}, "sign out", css="inline")
    return f'{link("/", "chats")} {people} {link("/import", "import")} {signed} {leave}'


def chats(rows: list[ChatRow], viewer: Viewer) -> str:
    if not rows:
        return notice("No chat yet: talk to GOAT, or import an export.")
    body = [[link("/chat", row.chat_id, c=row.chat_id), str(row.entries), h(when(row.last)),
             h(", ".join(row.languages) or "—")] for row in rows]
    return table(["chat", "archived turns and notes", "last activity", "languages (scripts)"], body, "chats")


def people(users: list[str]) -> str:
    rows = [[link("/person", user, u=user), link("/export", "export (JSON)", u=user)] for user in users]
    return table(["person", ""], rows) if rows else notice("No one yet.")


def entry_title(entry: Hit) -> str:
    """A turn's first words, as a turns list shows it."""
    user, reply = turn_parts(entry["content"])
    first = (user.removeprefix(USER_PREFIX) if user is not None else reply or "").strip()
    return first[:120] + ("…" if len(first) > 120 else "")


def turns_list(chat_id: str, entries: list[Hit], following: str | None, cursor: str | None) -> str:
    rows = [[h(when(entry["timestamp"])), h(entry["metadata"].get("turn", "note")), who(entry["metadata"]),
             link("/turn", entry_title(entry) or entry["id"], c=chat_id, id=entry["id"])] for entry in entries]
    pages = " ".join(filter(None, [
        link("/chat", "newest", c=chat_id) if cursor else "",
        link("/chat", "older turns →", c=chat_id, cursor=following) if following else ""]))
    listed = table(["when", "turn", "who", "message"], rows, "turns") if rows else notice("No turn archived here.")
    return f'<section><h2>Turns, newest first</h2>{listed}<p class="pages">{pages}</p></section>'


def listening(on: bool, days: float) -> str:
    """A Telegram group's line: whether its whole conversation is heard, and for how long it is kept."""
    if not on:
        return "<p class=\"listening\">Telegram group: only what is addressed to the bot is kept (/listen off).</p>"
    kept = f"{days:g} days (older ones erased)" if days else "until forgotten"
    return f"<p class=\"listening\">Telegram group, listened to (/listen on): its messages are kept {h(kept)}.</p>"


def who(metadata: Mapping[str, Any]) -> str:
    """Who wrote an entry, escaped: their name and id when they gave a name, else what is known."""
    user_id, name = metadata.get("user_id", ""), metadata.get("name")
    return h(f"{name} ({user_id})" if name and user_id else name or user_id)


def search_form(chat_id: str, query: str, as_of: str, examples: list[tuple[str, str]]) -> str:
    """The search box: a message, and the day it is asked on (GOAT's recall reads times)."""
    asked = "".join(f"<li>{link('/chat', question, c=chat_id, q=question, asof=day)}</li>" for question, day in examples)
    shown = f'<p>The demo\'s questions, asked the day after its last session:</p><ul class="examples">{asked}</ul>' if asked else ""
    return (f'<section><h2>What would GOAT recall for a message?</h2>'
            f'<form method="get" action="/chat" class="search" role="search"><input type="hidden" name="c" value="{h(chat_id)}">'
            f'<input type="search" name="q" value="{h(query)}" placeholder="type a message" aria-label="message" required>'
            f'<label>asked on <input type="date" name="asof" value="{h(as_of)}"></label>'
            f'<button type="submit">recall</button></form>{shown}</section>')


def recall_report(report: TurnReport, verdicts: list[Verdict], whys: Mapping[str, str]) -> str:
    """What recall would inject for a message, and why: as `goat inspect` reports it, drawn."""
    prefetch = report.get("prefetch") or {}
    injected = report.get("l3") or []
    summary = (f"budget {h(report.get('budget'))} tokens · mechanisms fired: {h(', '.join(prefetch.get('fired') or []) or 'none')}"
               f" · found {h(', '.join(f'{k} {v}' for k, v in (prefetch.get('found') or {}).items()) or 'nothing')}"
               f" · the gap filter kept {h(report.get('kept', 0))}, {len(injected)} injected")
    shown = injected_table(injected, whys) or notice("Nothing stands out: nothing of the archive would be injected.")
    degraded = "".join(notice(f"{node}: {problem}", "warn") for node, problem in (report.get("degraded") or {}).items())
    return (f'<section class="recall"><h2>What would be injected for “{h(report.get("message") or "")}”</h2>'
            f'<p class="summary">{summary}</p>{degraded}'
            f'{charts.recall_candidates(list(verdicts), {entry["id"] for entry in injected})}'
            f'{charts.budget_split(report.get("split"), report.get("tokens"))}{shown}'
            f'{charts.latencies(report.get("latency_ms"))}</section>')


def turn(chat_id: str, entry: Hit, logged: Mapping[str, Any] | None, injected: str, viewer: Viewer) -> str:
    """A turn: its message and reply, what its recall injected (from the turn log, and the chat's
    last turn's checkpoint), the budget's split and each step's latency, and forgetting it."""
    user, reply = turn_parts(entry["content"])
    meta = entry["metadata"]
    said = (f'<h2>Message</h2>{text_block(user.removeprefix(USER_PREFIX))}' if user is not None else "") + (
        f'<h2>Reply</h2>{text_block(reply)}' if reply is not None else "")
    facts = (f'<p class="meta">chat {h(chat_id)} · turn {h(meta.get("turn", "—"))} · {who(meta)}'
             f' · {h(when(entry["timestamp"]))} · id {h(entry["id"])}</p>')
    again = link("/chat", "what would be recalled for this message as of its day", c=chat_id,
                 q=(user or "").removeprefix(USER_PREFIX)[:500], asof=_day(entry["timestamp"]))
    forget = link("/forget", "forget this turn…", what="turn", c=chat_id, id=entry["id"])
    return f'{facts}{said}<section><h2>Before it</h2>{_logged(logged)}{injected}<p>{again}</p></section><p>{forget}</p>'


def _logged(line: Mapping[str, Any] | None) -> str:
    """What the turn log says of a turn: its recall, the budget's split, each step's latency."""
    if line is None:
        return notice("The turn log holds no line of this turn: it was imported, or its line rotated out of "
                      "the log (or was written by a GOAT before the log kept turns).")
    prefetch = line.get("prefetch") or {}
    by = ", ".join(f"{k} {v}" for k, v in (prefetch.get("injected_by_mechanism") or {}).items()) or "nothing"
    return (f'<p class="summary">from the turn log ({h(line.get("timestamp", ""))}): mechanisms fired '
            f'{h(", ".join(prefetch.get("fired") or []) or "none")}; found {h(prefetch.get("found") or {})}; '
            f'the gap filter kept {h(prefetch.get("filtered", 0))}; injected {h(prefetch.get("injected", 0))} ({h(by)})</p>'
            f'{charts.budget_split(line.get("split"), line.get("tokens"))}{charts.latencies(line.get("latency_ms"))}')


def injected_table(injected: list[Mapping[str, Any]], whys: Mapping[str, str]) -> str:
    """The entries a recall injected, best first: mechanism, distance, score, why, who said it, the
    text ("" for none)."""
    rows = [[h(entry["mechanism"]), f"{entry['distance']:.3f}",
             "—" if entry.get("blended_score") is None else f"{entry['blended_score']:.3f}",
             h(whys.get(entry["id"], "")), who(entry.get("metadata") or {"name": entry.get("name")}), text_block(entry["content"])]
            for entry in injected]
    return table(["mechanism", "distance", "score", "why", "who", "injected text"], rows, "injected") if rows else ""


def injected_before(injected: list[Hit], whys: Mapping[str, str]) -> str:
    """What the chat's last turn injected, each entry with why (its checkpoint keeps them)."""
    return "<h3>Injected (kept in the chat's last checkpoint)</h3>" + (
        injected_table(injected, whys) or notice("Its recall injected nothing."))


def injected_logged(named: list[Mapping[str, Any]], found: Mapping[str, Mapping[str, Any]]) -> str:
    """What an earlier turn injected, as its turn-log line names the entries (best first), each
    shown whole as the archive holds it now (an excerpt was cut from it); one forgotten since says so."""
    rows = [{"id": e["id"], "mechanism": e["mechanism"], "distance": e["distance"], "blended_score": e["score"],
             "content": found[e["id"]]["content"] if e["id"] in found else "(forgotten since)",
             "metadata": found[e["id"]]["metadata"] if e["id"] in found else {}} for e in named]
    return "<h3>Injected (named by the turn log; each entry whole, as the archive holds it now)</h3>" + (
        injected_table(rows, {}) or notice("Its recall injected nothing."))


def _day(seconds: float) -> str:
    return when(seconds)[:10]


def facts(person: str, known: Mapping[str, str], viewer: Viewer) -> str:
    """A person's facts (L1), each editable and deletable, and a new one."""
    rows = []
    for key, value in sorted(known.items()):
        edit = post_form("/facts/remember", viewer.csrf, {"u": person, "key": key}, "save", css="inline",
                         inputs=f'<input name="value" value="{h(value)}" aria-label="value of {h(key)}" required>')
        drop = post_form("/facts/forget", viewer.csrf, {"u": person, "key": key}, "delete", css="inline",
                         confirm=f"Delete the fact {key}?")
        rows.append([h(key), edit, drop])
    listed = table(["key", "value", ""], rows, "facts") if rows else notice("No facts kept.")
    add = post_form("/facts/remember", viewer.csrf, {"u": person}, "remember", css="add",
                    inputs='<input name="key" placeholder="key" aria-label="new key" required>'
                           '<input name="value" placeholder="value" aria-label="new value" required>')
    actions = (f'<p>{link("/export", "download everything of " + person + " (JSON)", u=person)} · '
               f'{link("/forget", "forget everything of " + person + "…", what="person", u=person)}</p>')
    return f'<section><h2>Facts (L1, in every prompt)</h2>{listed}{add}</section>{actions}'


def confirm(what: str, fields: dict[str, str], erases: str, viewer: Viewer, back: str) -> str:
    """The confirmation a forget asks: what will be erased, then the POST that does it."""
    form = post_form("/forget", viewer.csrf, {"what": what, **fields}, "forget for good", css="danger")
    return f'<p class="erases">{h(erases)}</p>{form}<p><a href="{back}">cancel</a></p>'


def forgotten(lines: list[str], back: str) -> str:
    items = "".join(f"<li>{h(line)}</li>" for line in lines)
    return f'<ul class="report">{items}</ul><p><a href="{back}">back</a></p>'


def import_form(viewer: Viewer, formats: tuple[str, ...]) -> str:
    options = '<option value="">told by its content</option>' + "".join(
        f'<option value="{h(name)}">{h(name)}</option>' for name in formats)
    whom = "" if not viewer.operator else (
        '<label>as whom (Telegram: your user id; ChatGPT: the user id to keep your messages under) '
        '<input name="me"></label><label>into one chat <input name="into"></label>')
    return (f'<form method="post" action="/import" enctype="multipart/form-data" class="upload">'
            f'<input type="hidden" name="csrf" value="{h(viewer.csrf)}">'
            f'<label>a Telegram Desktop export (result.json or its zip), a ChatGPT export (its zip or '
            f'conversations.json), or a JSON Lines transcript <input type="file" name="file" required></label>'
            f'<label>format <select name="format">{options}</select></label>{whom}'
            f'<button type="submit">import</button></form>')


def import_progress(job_id: str, name: str, state: Mapping[str, Any]) -> str:
    lines = "".join(f"<li>{h(line)}</li>" for line in state["lines"])
    return (f'<div class="import" data-status="{href("/import/status", job=job_id)}">'
            f'<p>{h(name)}: <span class="state">{h(state["state"])}</span> '
            f'<span class="count">{h(state["done"])} / {h(state["total"])}</span> turns</p>'
            f'<progress value="{h(state["done"])}" max="{h(state["total"] or 1)}"></progress>'
            f'<ul class="lines">{lines}</ul><noscript>Reload the page to see how far it is.</noscript></div>'
            f'<p>{link("/", "the chats")}</p>')
