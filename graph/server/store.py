"""GOAT's memory as LangGraph's Store: a second door onto the same memory, for Studio's store
view, ``langgraph_sdk``'s ``client.store`` calls, any graph's ``runtime.store`` and LangMem's tools.

Two shapes of namespace, each written in terms of the memory façade's verbs:

- ``("users", user_id, "facts")``: the user's L1 facts, key -> ``{"value": text}`` (the facts
  ``/facts`` shows, ``/remember`` keeps and ``/forget`` drops).
- ``("chats", chat_id, "memories")``: the chat's L3 entries by id, value ``{"text", "role", "time"}``
  and ``"name"`` when its speaker (or the note's writer) gave one (role ``turn``: an archived
  exchange; ``note``: a memory kept on purpose). A search with a
  query is GOAT's explicit search (``/search``), each item carrying the searched words it holds
  (``words``) and why it was kept (``why``); a put keeps a note as ``store_memory`` does (by
  ``user_id`` and ``name`` when given); a
  delete removes the entry everywhere ``delete_memory`` does.

What the Store API allows and GOAT does not hold (another namespace, a TTL, index fields, a
filter on other fields) is refused with an error saying so. The turn graph reads nothing
through here: its nodes keep the memory door.
"""

from __future__ import annotations

import asyncio
import operator
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo

from langgraph.store.base import (NOT_PROVIDED, BaseStore, GetOp, Item, ListNamespacesOp, MatchCondition, NotProvided,
                                  Op, PutOp, Result, SearchItem, SearchOp)

from graph.checkpoint import served_services
from graph.json_limits import check_value
from graph.settings import Server
from memory.facade import Memory, MemoryScope, SearchResult
from memory.retrieval import iso_bound
from memory.turns import Hit, iso_time
from nodes.services import Services

USERS, FACTS = "users", "facts"
CHATS, MEMORIES = "chats", "memories"
ANY_CHAT = ""  # a scope's chat where only the user's facts are read or kept: theirs in every chat
TURN, NOTE = "turn", "note"  # an entry's role: an archived exchange, or a note kept on purpose
NOTE_FIELDS = frozenset({"text", "content", "tags", "user_id", "name"})  # what a put of a note may carry
_PAGE = 100  # entries read a page at a time when listing a chat's memories
# A time filter's operators, each with how a bare date bounds it (its day's start or end).
_TIME_OPERATORS = {"$gt": "before", "$gte": "after", "$lt": "after", "$lte": "before", "$eq": "after"}
_COMPARE = {"$eq": lambda have, want: have == want if isinstance(have, str) else iso_time(have) == iso_time(want),
            "$ne": operator.ne, "$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}
_SHAPES = f'("{USERS}", <user id>, "{FACTS}") and ("{CHATS}", <chat id>, "{MEMORIES}")'


class NotSupported(NotImplementedError, ValueError):
    """What the Store API allows and GOAT does not do: a NotImplementedError, as LangGraph's own
    stores raise, and a ValueError, which LangGraph's server answers with a 400 and this reason
    (any other error is an empty 500 that drops the connection)."""


class GoatStore(BaseStore):
    """LangGraph's ``BaseStore`` over a :class:`Memory`. Its async methods run on the event loop
    the memory's clients belong to (the first one it is used on); its sync methods run them there
    from another thread, or on a loop of the store's own when none is running."""

    supports_ttl = False

    def __init__(self, memory: Memory, server: Server) -> None:
        """Args:
            memory: the memory it is a door onto (not closed by the store).
            server: who the server serves (a note put without a user is ``server.developer``'s).
        """
        self.memory = memory
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._own_loop: asyncio.AbstractEventLoop | None = None

    # ---- batches ------------------------------------------------------------------------

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order (a put is seen by a get after it in the same batch).

        Returns:
            One result per operation, in their order.
        Raises:
            ValueError, NotSupported: an operation GOAT's memory cannot do (nothing after it runs).
        """
        running = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = running
        elif running is not self._loop:
            raise RuntimeError("this GoatStore's memory lives on another event loop: use it from that loop")
        return [await self._run(op) for op in ops]

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`abatch` from synchronous code (not from the store's own event loop's thread).

        Returns:
            One result per operation, in their order.
        """
        ops = list(ops)
        loop = self._loop or self._start_own_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("the sync store methods would block their own event loop: await the a-methods "
                               "(aget, aput, asearch…) there")
        return asyncio.run_coroutine_threadsafe(self.abatch(ops), loop).result()

    def _start_own_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="goat-store", daemon=True).start()
        self._own_loop = self._loop = loop
        return loop

    def close(self) -> None:
        """Stop the loop of the store's own, when sync calls started one, closing the memory first
        (its clients belong to that loop)."""
        if self._own_loop is not None:
            asyncio.run_coroutine_threadsafe(self.memory.aclose(), self._own_loop).result()
            self._own_loop.call_soon_threadsafe(self._own_loop.stop)
            self._own_loop = None

    async def aput(self, namespace: tuple[str, ...], key: str, value: dict[str, Any],
                   index: Literal[False] | list[str] | None = None, *,
                   ttl: float | None | NotProvided = NOT_PROVIDED) -> None:
        """BaseStore's ``aput``, which LangGraph's server calls, with a TTL refused as GOAT refuses
        what it does not do (BaseStore refuses it with a bare NotImplementedError).

        Args:
            namespace, key, value, index: as BaseStore's.
            ttl: refused unless None or not given.
        """
        _refuse_ttl(ttl)
        await super().aput(namespace, key, value, index)

    # ---- one operation ------------------------------------------------------------------

    async def _run(self, op: Op) -> Result:
        if isinstance(op, GetOp | PutOp) and "\0" in op.key:
            # LangGraph's server writes NUL as U+FFFD in its JSON: the key would come back as another.
            raise ValueError(f"a key may hold no NUL character (\\0), which the server's JSON turns into U+FFFD; "
                             f"got {op.key!r}")
        if isinstance(op, PutOp) and op.value is not None:
            check_value(op.value, "a memory's value")
        if isinstance(op, SearchOp) and op.filter:
            check_value(op.filter, "a filter")
        if isinstance(op, GetOp):
            return await self._get(op)
        if isinstance(op, PutOp):
            return await self._put(op)
        if isinstance(op, SearchOp):
            return await self._search(op)
        if isinstance(op, ListNamespacesOp):
            return await self._list_namespaces(op)
        raise NotSupported(f"GOAT's store does not run {type(op).__name__}")

    async def _get(self, op: GetOp) -> Item | None:
        kind, owner = _parse(op.namespace)
        if kind == USERS:
            facts = await self._facts_of(owner).facts()
            return _fact_item(owner, op.key, facts[op.key]) if op.key in facts else None
        found = await self.memory.entries.of_ids(owner, [op.key])
        return _memory_item(owner, found[0]) if found else None

    async def _put(self, op: PutOp) -> None:
        kind, owner = _parse(op.namespace)
        _refuse_ttl(op.ttl)
        if op.index is not None:
            raise NotSupported("GOAT indexes every memory by its text, words and meaning: "
                               "index fields (or index=False) are not supported")
        if kind == USERS:
            await self._put_fact(owner, op.key, op.value)
        else:
            await self._put_note(owner, op.key, op.value)

    async def _put_fact(self, user_id: str, key: str, value: dict[str, Any] | None) -> None:
        if value is None:
            await self._facts_of(user_id).forget_fact(key)
            return
        if set(value) != {"value"} or not isinstance(value["value"], str):
            raise ValueError(f'a fact\'s value is {{"value": "<text>"}}, got {value!r}')
        await self._facts_of(user_id).remember(key, value["value"])

    async def _put_note(self, chat_id: str, key: str, value: dict[str, Any] | None) -> None:
        if value is None:
            await self.memory.entries.delete(chat_id, key)
            return
        texts = [value[name] for name in ("text", "content") if name in value]
        if set(value) - NOTE_FIELDS or len(texts) != 1 or not isinstance(texts[0], str):
            raise ValueError(f'a memory\'s value is {{"text": "<text>"}} (or LangMem\'s "content"), with "tags", '
                             f'"user_id" and "name" if wanted; got the fields {sorted(value)}')
        user_id = value.get("user_id") or self.server.developer
        await self.memory.scope(chat_id, str(user_id)).store(texts[0], value.get("tags"), entry_id=key,
                                                             name=value.get("name"))

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        _refuse_negative(limit=op.limit, offset=op.offset)
        if len(op.namespace_prefix) != 3:
            raise ValueError(f"a search names one namespace, {_SHAPES}, not {op.namespace_prefix!r}: "
                             "list_namespaces finds them")
        kind, owner = _parse(op.namespace_prefix)
        if kind == USERS:
            if op.query or op.filter:
                raise NotSupported("facts are listed whole, by key: a query or a filter is not supported")
            facts = sorted((await self._facts_of(owner).facts()).items())[op.offset : op.offset + op.limit]
            return [_fact_item(owner, key, value) for key, value in facts]
        wanted = EntryFilter.of(op.filter or {}, ZoneInfo(self.memory.settings.prefetch.timezone))
        if op.query:
            return await self._search_chat(owner, op.query, wanted, op.limit, op.offset)
        return await self._list_chat(owner, wanted, op.limit, op.offset)

    def _facts_of(self, user_id: str) -> MemoryScope:
        return self.memory.scope(ANY_CHAT, user_id)

    async def _search_chat(self, chat_id: str, query: str, wanted: EntryFilter, limit: int,
                           offset: int) -> list[SearchItem]:
        settings = self.memory.settings
        # The namespace is one chat's, whatever scope the turns recall from.
        knobs: dict[str, Any] = {"memory.scope": "chat"}
        if offset + limit > settings.prefetch.max_results:
            knobs["prefetch.max_results"] = offset + limit
        scope = self.memory.scope(chat_id, self.server.developer, settings=settings.with_overrides(knobs))
        found = [hit for hit in await scope.found(query, wanted.after, wanted.before) if wanted.holds(hit.hit)]
        return [_found_item(chat_id, hit) for hit in found[offset : offset + limit]]

    async def _list_chat(self, chat_id: str, wanted: EntryFilter, limit: int, offset: int) -> list[SearchItem]:
        items: list[SearchItem] = []
        cursor: str | None = None
        skip = offset
        while len(items) < limit:
            entries, cursor = await self.memory.entries.page(chat_id, _PAGE, cursor)
            for entry in filter(wanted.holds, entries):
                if skip:
                    skip -= 1
                elif len(items) < limit:
                    items.append(_memory_item(chat_id, entry))
            if cursor is None:
                break
        return items

    async def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        # max_depth cuts as LangGraph's InMemoryStore does (0: the empty namespace, once).
        _refuse_negative(limit=op.limit, offset=op.offset, max_depth=op.max_depth)
        users, chats = await self.memory.admin.users_and_chats()
        every = sorted([(USERS, user, FACTS) for user in users] + [(CHATS, chat, MEMORIES) for chat in chats])
        matching = [ns for ns in every if all(_matches(condition, ns) for condition in op.match_conditions or ())]
        if op.max_depth is not None:
            matching = sorted({ns[: op.max_depth] for ns in matching})
        return matching[op.offset : op.offset + op.limit]


class EntryFilter:
    """A search's filter on a chat's entries: ``role`` (``turn`` or ``note``; equal, or ``$eq`` /
    ``$ne``) and ``time`` (ISO-8601; ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$eq``)."""

    def __init__(self, role: dict[str, str], times: dict[str, float], after: str | None, before: str | None) -> None:
        self.role, self.times, self.after, self.before = role, times, after, before

    @classmethod
    def of(cls, given: dict[str, Any], zone: ZoneInfo) -> EntryFilter:
        """Raises ValueError for any other field or operator, or a time that is not ISO-8601."""
        if unknown := set(given) - {"role", "time"}:
            raise ValueError(f"a chat's memories are filtered on role and time only, not {sorted(unknown)}")
        role = given.get("role", {})
        role = role if isinstance(role, dict) else {"$eq": role}
        if set(role) - {"$eq", "$ne"} or not all(value in (TURN, NOTE) for value in role.values()):
            raise ValueError(f'role is "{TURN}" or "{NOTE}", compared with $eq or $ne; got {given["role"]!r}')
        time_filter = given.get("time", {})
        if not isinstance(time_filter, dict) or set(time_filter) - set(_TIME_OPERATORS):
            raise ValueError(f"time is filtered with {', '.join(_TIME_OPERATORS)} on ISO-8601 times; "
                             f"got {time_filter!r}")
        times = {op: iso_bound(str(text), zone, _TIME_OPERATORS[op]) for op, text in time_filter.items()}
        after = time_filter.get("$gte", time_filter.get("$gt", time_filter.get("$eq")))
        before = time_filter.get("$lte", time_filter.get("$lt", time_filter.get("$eq")))
        return cls(role, times, None if after is None else str(after), None if before is None else str(before))

    def holds(self, entry: Hit) -> bool:
        """Whether the entry (as the façade gives it) passes."""
        return (all(_COMPARE[op](role_of(entry), role) for op, role in self.role.items())
                and all(_COMPARE[op](entry["timestamp"], moment) for op, moment in self.times.items()))


@asynccontextmanager
async def served_store() -> AsyncIterator[GoatStore]:
    """What ``langgraph.json`` serves: the store over the server's memory (the graph's own, so one
    process opens the embedded Redis and Chroma once), whose erases cut the chats' checkpoints too."""
    Services.serve_from(served_services)  # LangGraph's server enters the store before it loads the graph
    services = Services.for_server()
    yield GoatStore(services.memory, services.settings.server)


def _parse(namespace: tuple[str, ...]) -> tuple[str, str]:
    """(``users`` or ``chats``, its user or chat id); ValueError for another shape."""
    if len(namespace) == 3 and (namespace[0], namespace[2]) in ((USERS, FACTS), (CHATS, MEMORIES)):
        return namespace[0], namespace[1]
    raise ValueError(f"GOAT's store holds {_SHAPES}, not {namespace!r}")


def _refuse_ttl(ttl: float | None | NotProvided) -> None:
    if ttl not in (NOT_PROVIDED, None):
        raise NotSupported("GOAT keeps a memory until it is deleted or forgotten: a TTL is not supported")


def _refuse_negative(**paging: int | None) -> None:
    # A negative one would slice from the end: a page of something other than what was asked.
    if negative := [f"{name}={value}" for name, value in paging.items() if value is not None and value < 0]:
        raise ValueError(f"{', '.join(negative)}: limit, offset and max_depth are not negative")


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = condition.path
    if len(path) > len(namespace):
        return False
    ends = namespace[: len(path)] if condition.match_type == "prefix" else namespace[len(namespace) - len(path):]
    return all(want in ("*", have) for want, have in zip(path, ends))


def role_of(entry: Hit) -> str:
    """An entry's role (as the façade gives it): an archived exchange, or a note."""
    return TURN if "turn" in entry["metadata"] else NOTE


def _moment(entry: Hit) -> datetime:
    return datetime.fromtimestamp(entry["timestamp"], timezone.utc)


def _memory_value(entry: Hit) -> dict[str, Any]:
    name = entry["metadata"].get("name")
    return {"text": entry["content"], "role": role_of(entry), "time": iso_time(entry["timestamp"]),
            **({"name": name} if name else {})}


def _memory_item(chat_id: str, entry: Hit) -> SearchItem:
    return SearchItem((CHATS, chat_id, MEMORIES), entry["id"], _memory_value(entry), _moment(entry), _moment(entry))


def _found_item(chat_id: str, found: SearchResult) -> SearchItem:
    hit = found.hit
    # The selection's blended score (similarity, recency, popularity); an entry found for holding
    # every word searched for alone has its similarity (distances are 2 - 2·cos).
    score = hit.get("blended_score", 1.0 - hit["distance"] / 2)
    return SearchItem((CHATS, chat_id, MEMORIES), hit["id"],
                      {**_memory_value(hit), "words": found.words, "why": found.why},
                      _moment(hit), _moment(hit), score=round(float(score), 4))


def _fact_item(user_id: str, key: str, value: str) -> SearchItem:
    # Facts keep no times: an item's are when it was read.
    now = datetime.now(timezone.utc)
    return SearchItem((USERS, user_id, FACTS), key, {"value": value}, now, now)
