"""L2 working memory: each chat's conversation as an append-only Redis list.

Keys carry the chat id as a hash tag (``goat:l2:{42}``, ``goat:turns:{42}``) so a
chat's list and turn counter share one Redis Cluster slot, as its scripts need. (A chat id
starting with ``}`` would make an empty tag, which Redis ignores: such a chat's keys are
tagged by a digest of its id instead, ``goat:l2:#{<sha-256>}``.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Literal, NamedTuple, get_args

import orjson
from redis.asyncio import Redis

from memory.prompt.budget import newest_within
from memory.prompt.tokens import count_tokens
from memory.turns import Message, Working, archive_content

Role = Literal["user", "assistant"]  # the roles L2 keeps (a prompt's "system" is made every turn)


class MessageLink(NamedTuple):
    """The turn that stored a client's message (a Telegram message): what an edit of it replaces."""

    turn: int
    at: float  # the turn's time, its user message's timestamp in L2
    chars: int  # the user's text as stored now, in characters: where the reply starts in the L3 entry
    user_id: str
    heard: bool = False  # a line the bot heard in a listening group, not a turn addressed to it


# Append turns' messages and record their numbers in one step. KEYS: the messages list, the turn
# counter, the chat's people. ARGV: how many people, each person's id and name, then for each turn
# its number, its message count, then its messages. A turn resumed after a crash may replay its
# save: the same messages as the last saved turn add nothing (2); a turn whose number is already
# taken by other messages is refused (0). Returns each turn's result, in order. Once a turn is
# saved, each speaker is recorded: by their name when one is given, else kept as they were
# (recorded without one, "", the first time).
_APPEND_TURNS = """
local results = {}
local people = tonumber(ARGV[1])
local at = 2 + 2 * people
local saved_any = false
while at <= #ARGV do
    local turn, count = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
    local first, final = at + 2, at + 1 + count
    local last = tonumber(redis.call('GET', KEYS[2]) or '0')
    local result = 1
    if last == turn then
        result = 2
        for i = 1, count do  -- LINDEX from the tail: LRANGE walks from the head (see _LOAD)
            if redis.call('LINDEX', KEYS[1], i - 1 - count) ~= ARGV[first + i - 1] then result = 0 end
        end
    elseif last > turn then
        result = 0
    else
        redis.call('RPUSH', KEYS[1], unpack(ARGV, first, final))
        redis.call('SET', KEYS[2], ARGV[at])
    end
    saved_any = saved_any or result ~= 0
    results[#results + 1] = result
    at = final + 1
end
if saved_any then
    for i = 2, 2 * people, 2 do
        if ARGV[i + 1] ~= '' then redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
        else redis.call('HSETNX', KEYS[3], ARGV[i], '') end
    end
end
return results
"""


# The chat's completed turns, its length, its first message, its latest ARGV[1] messages (none for
# 0) and its people: one consistent snapshot. KEYS: the messages list, the turn counter, the people.
# The latest are read one by one in a list of over 100 times as many: Redis 6.2's LRANGE walks to
# them from the list's head (9 ms in a chat of a million messages, against 0.5 for 400 LINDEX from
# its tail); in a shorter list the walk costs less than the calls.
_LOAD = """
local latest = {}
local wanted, length = tonumber(ARGV[1]), redis.call('LLEN', KEYS[1])
if length > 100 * wanted then
    for i = -wanted, -1 do latest[#latest + 1] = redis.call('LINDEX', KEYS[1], i) end
elseif wanted > 0 then
    latest = redis.call('LRANGE', KEYS[1], -wanted, -1)
end
return {redis.call('GET', KEYS[2]), length, redis.call('LINDEX', KEYS[1], 0), latest, redis.call('HGETALL', KEYS[3])}
"""


# Removes the messages of one user (their ``user_id``) from a chat's L2, keeping the others in order,
# the links of their messages and their name. KEYS: the messages list, the links, the people. ARGV:
# the user id. Returns how many messages were removed.
_REMOVE_USER = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local kept = {}
for _, item in ipairs(items) do
    local ok, message = pcall(cjson.decode, item)
    if not (ok and type(message) == 'table' and message['user_id'] == ARGV[1]) then
        kept[#kept + 1] = item
    end
end
redis.call('DEL', KEYS[1])
for i = 1, #kept, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 999, #kept)))
end
local links = redis.call('HGETALL', KEYS[2])
for i = 1, #links, 2 do
    local ok, link = pcall(cjson.decode, links[i + 1])
    if ok and type(link) == 'table' and link['user_id'] == ARGV[1] then redis.call('HDEL', KEYS[2], links[i]) end
end
redis.call('HDEL', KEYS[3], ARGV[1])
return #items - #kept
"""

# Appends heard lines, each a turn of one message, and takes them off the chat's waiting lines, in one
# step. KEYS: the messages list, the turn counter, the people, the links, the waiting lines. ARGV:
# the counter as read (nothing is written if it moved), how many lines, then for each: its message,
# its client's id, its link, its speaker's id and name ("" for none). Returns 1, or 0 when refused.
_APPEND_HEARD = """
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then return 0 end
local count = tonumber(ARGV[2])
for i = 0, count - 1 do
    local at = 3 + 5 * i
    redis.call('RPUSH', KEYS[1], ARGV[at])
    redis.call('HSET', KEYS[4], ARGV[at + 1], ARGV[at + 2])
    if ARGV[at + 4] ~= '' then redis.call('HSET', KEYS[3], ARGV[at + 3], ARGV[at + 4])
    else redis.call('HSETNX', KEYS[3], ARGV[at + 3], '') end
end
redis.call('SET', KEYS[2], tonumber(ARGV[1]) + count)
redis.call('LTRIM', KEYS[5], count, -1)
return 1
"""

# Removes the heard lines said before a time, and their links. KEYS: the messages list, the links.
# ARGV: the time. Returns the texts removed.
_REMOVE_HEARD_BEFORE = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local kept, removed = {}, {}
local before = tonumber(ARGV[1])
for _, item in ipairs(items) do
    local ok, message = pcall(cjson.decode, item)
    if ok and type(message) == 'table' and message['heard'] and tonumber(message['timestamp']) < before then
        removed[#removed + 1] = message['content']
    else
        kept[#kept + 1] = item
    end
end
if #removed > 0 then
    redis.call('DEL', KEYS[1])
    for i = 1, #kept, 1000 do
        redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 999, #kept)))
    end
end
local links = redis.call('HGETALL', KEYS[2])
for i = 1, #links, 2 do
    local ok, link = pcall(cjson.decode, links[i + 1])
    if ok and type(link) == 'table' and link['heard'] and tonumber(link['at']) < before then
        redis.call('HDEL', KEYS[2], links[i])
    end
end
return removed
"""

# Replaces one message if it is still the one read. KEYS: the messages list. ARGV: its index, the
# message read there, the message to put instead.
_REPLACE = """
if redis.call('LINDEX', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('LSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""
# Replaces the messages of one turn, if they are still those read, by others (as many: each in
# place; else the messages after them are moved up behind the new ones). KEYS: the messages list.
# ARGV: the index of the turn's first message (from the end: negative), how many it has, them as
# read, the messages to put instead. Returns how many were replaced, -1 when they were not those.
_REPLACE_TURN = """
local key, first, held = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local given = #ARGV - 2 - held
for i = 1, held do
    if redis.call('LINDEX', key, first + i - 1) ~= ARGV[2 + i] then return -1 end
end
if given == held then
    for i = 1, given do redis.call('LSET', key, first + i - 1, ARGV[2 + held + i]) end
    return held
end
local after = {}
if first + held < 0 then after = redis.call('LRANGE', key, first + held, -1) end
redis.call('LTRIM', key, 0, first - 1)
for i = 3 + held, #ARGV do redis.call('RPUSH', key, ARGV[i]) end
for i = 1, #after, 1000 do
    redis.call('RPUSH', key, unpack(after, i, math.min(i + 999, #after)))
end
return held
"""
_SCAN_PAGE = 256  # messages read at a time, newest first, looking for one (edited, or of a deleted turn)
_SAME_TIME_S = 1e-3  # an archived turn's time, as L3 hands it back, and its L2 messages' time


class WorkingMemory:
    def __init__(self, redis: Redis, prefix: str = "goat") -> None:
        self._redis = redis
        self._prefix = prefix
        self._append_turns = redis.register_script(_APPEND_TURNS)
        self._load = redis.register_script(_LOAD)
        self._remove_user = redis.register_script(_REMOVE_USER)
        self._replace = redis.register_script(_REPLACE)
        self._replace_turn = redis.register_script(_REPLACE_TURN)
        self._append_heard = redis.register_script(_APPEND_HEARD)
        self._remove_heard_before = redis.register_script(_REMOVE_HEARD_BEFORE)

    async def completed_turns(self, chat_id: str) -> int:
        """The number of the last turn saved in this chat (0 for a new chat)."""
        return int(await self._redis.get(self._turns_key(chat_id)) or 0)

    async def load(self, chat_id: str, max_messages: int, max_tokens: int | None = None) -> Working:
        """The chat's completed turns, its first message (it set the topic) plus its latest
        ``max_messages``, and its people — one consistent snapshot, in one round trip. With ``max_tokens``, the
        latest stop before the first (walking back) that would take them past that many tokens:
        no budget could take more, and what is left out is not decoded."""
        if max_messages < 0:
            raise ValueError(f"max_messages must be >= 0, got {max_messages}")
        # A script rather than MULTI: redis-py's cluster client queues each command of a
        # transaction through a thread of its own (4.5 ms against 0.2 ms for this script).
        turns, length, first, tail, people = await self._load(
            keys=[self._messages_key(chat_id), self._turns_key(chat_id), self._people_key(chat_id)],
            args=[max_messages])
        if max_tokens is None:
            latest = [orjson.loads(raw) for raw in tail]
        else:  # decoded newest first, only as far as the tokens reach
            latest, _ = newest_within((orjson.loads(raw) for raw in reversed(tail)), max_tokens, count_tokens)
        if length > len(latest):  # the first message is not among the latest
            latest = [orjson.loads(first), *latest]
        named = {people[i].decode(): people[i + 1].decode() for i in range(0, len(people), 2)}
        return Working(int(turns or 0), latest, named)

    async def append_turn(self, chat_id: str, turn: int, messages: list[Message]) -> bool:
        """Append a turn's messages; True if they are saved (now, or by an earlier replay of
        this same turn), False (nothing written) if the turn number belongs to other messages."""
        return (await self.append_turns(chat_id, [(turn, messages)]))[0]

    async def append_turns(self, chat_id: str, turns: list[tuple[int, list[Message]]]) -> list[bool]:
        """:meth:`append_turn` of each turn, in order, in one round trip (an import's batch).

        Returns:
            Each turn's result, as :meth:`append_turn`'s.
        Raises:
            ValueError: a turn numbered below 1 or without messages (nothing is written).
        """
        named: dict[str, str] = {}
        for _, messages in turns:
            for message in messages:
                if message.get("role") == "user" and message.get("user_id"):
                    named[message["user_id"]] = message.get("name") or named.get(message["user_id"], "")
        args: list[int | str] = [len(named), *(part for person in named.items() for part in person)]
        for turn, messages in turns:
            if turn < 1:
                raise ValueError(f"turn numbers start at 1, got {turn}")
            if not messages:
                raise ValueError("a turn needs at least one message")
            args += [turn, len(messages), *(_encode(message) for message in messages)]
        if not turns:
            return []
        keys = [self._messages_key(chat_id), self._turns_key(chat_id), self._people_key(chat_id)]
        return [bool(result) for result in await self._append_turns(keys=keys, args=args)]

    async def append_heard(self, chat_id: str, completed: int, lines: list[tuple[Message, str, MessageLink]],
                           waiting_key: str) -> bool:
        """Append heard lines (each: its message, its client's id, its link), a turn each numbered on
        from ``completed``, and take as many off the front of the list ``waiting_key`` (in the chat's
        hash slot), in one step.

        Returns:
            False, writing nothing, when the chat's turn count is no longer ``completed``.
        """
        args: list[int | str] = [completed, len(lines)]
        for message, ref, link in lines:
            args += [_encode(message), ref, json.dumps(link._asdict()), message.get("user_id", ""),
                     message.get("name") or ""]
        keys = [self._messages_key(chat_id), self._turns_key(chat_id), self._people_key(chat_id),
                self._links_key(chat_id), waiting_key]
        return bool(await self._append_heard(keys=keys, args=args))

    async def remove_heard_before(self, chat_id: str, before: float) -> list[str]:
        """Take the heard lines said before ``before`` (unix seconds) out of the chat's L2, and their
        links; returns their texts."""
        removed = await self._remove_heard_before(keys=[self._messages_key(chat_id), self._links_key(chat_id)],
                                                  args=[before])
        return [text.decode() for text in removed]

    def tag(self, chat_id: str) -> str:
        """The chat's hash tag: a key of the chat's own that a script of this module takes along carries it."""
        return _tag(chat_id)

    async def people(self, chat_id: str) -> dict[str, str]:
        """Who spoke in the chat: user id -> their latest name ("" if never given)."""
        return {user_id.decode(): name.decode() for user_id, name in
                (await self._redis.hgetall(self._people_key(chat_id))).items()}

    async def messages(self, chat_id: str) -> list[Message]:
        """The chat's whole L2, oldest first."""
        return [orjson.loads(raw) for raw in await self._redis.lrange(self._messages_key(chat_id), 0, -1)]

    async def remove_user(self, chat_id: str, user_id: str) -> int:
        """Take one user's messages out of the chat's L2 (messages saved with their ``user_id``),
        and their links; returns how many messages. With an edit (:meth:`replace_user_text`), the
        one rewrite of L2 there is: forgetting a person."""
        keys = [self._messages_key(chat_id), self._links_key(chat_id), self._people_key(chat_id)]
        return int(await self._remove_user(keys=keys, args=[user_id]))

    async def link(self, chat_id: str, message_ref: str, link: MessageLink) -> None:
        """Record which turn stored the client's message ``message_ref``."""
        await self._redis.hset(self._links_key(chat_id), message_ref, json.dumps(link._asdict()))

    async def linked(self, chat_id: str, message_ref: str) -> MessageLink | None:
        """The turn that stored the client's message, if one did."""
        raw = await self._redis.hget(self._links_key(chat_id), message_ref)
        return None if raw is None else MessageLink(**orjson.loads(raw))

    async def replace_user_text(self, chat_id: str, link: MessageLink, text: str) -> str | None:
        """Put ``text`` in place of the user message of the linked turn (its tokens counted again);
        returns the text replaced, None when L2 no longer holds it (the chat was reset, or the user
        forgotten). The chat is held by the caller: no turn appends meanwhile. Read newest first: an
        edit is of a recent message, mostly."""
        found = await self._newest_matching(chat_id, lambda message: (
            message["role"], message["timestamp"], message.get("user_id")) == ("user", link.at, link.user_id))
        if found is None:
            return None
        back, raw, message = found
        edited = _encode({**message, "content": text, "tokens": count_tokens(text)})
        replaced = await self._replace(keys=[self._messages_key(chat_id)], args=[-back, raw, edited])
        return message["content"] if replaced else None

    async def remove_turn(self, chat_id: str, at: float, content: str) -> int:
        """Take out of the chat's L2 the messages of the turn L3 archived as ``content`` at ``at``
        (a deleted memory): the message at that time that the archived turn begins with, and the
        reply after it when the turn holds one. The chat is held by the caller.

        Returns:
            How many messages were removed: 0 when L2 no longer holds them (the chat was reset,
            or the user forgotten).
        """
        key, (_, held) = self._messages_key(chat_id), await self._turn_messages(chat_id, at, content)
        async with self._redis.pipeline(transaction=False) as pipe:
            for item in held:
                pipe.lrem(key, -1, item)  # by value: nothing appended meanwhile can shift it
            return sum(await pipe.execute())

    async def replace_turn(self, chat_id: str, at: float, content: str, messages: list[Message]) -> int:
        """Put ``messages`` (their tokens counted again) where L2 holds the messages of the turn L3
        archived as ``content`` at ``at`` (those :meth:`remove_turn` takes): an imported exchange
        edited since. The chat is held by the caller.

        Returns:
            How many messages were replaced: 0 when L2 no longer holds them (nothing written).
        """
        back, held = await self._turn_messages(chat_id, at, content)
        if not held:
            return 0
        counted = [_encode({**message, "tokens": count_tokens(message["content"])}) for message in messages]
        return max(0, await self._replace_turn(keys=[self._messages_key(chat_id)],
                                               args=[-back, len(held), *held, *counted]))

    async def _turn_messages(self, chat_id: str, at: float, content: str) -> tuple[int, list[bytes]]:
        """The messages of L2, as stored, of the turn L3 archived as ``content`` at ``at`` (the
        message at that time the archived turn begins with, and the reply after it when the turn
        holds one), and the first one's place from the end; none when L2 no longer holds them."""
        def begins_the_turn(message: dict) -> bool:
            line = _archived_line(message)
            # Chroma may hand a time back an ulp off (1795478214.2426763 as …65): the text decides.
            return abs(message["timestamp"] - at) < _SAME_TIME_S and (
                content == line or content.startswith(line + "\n"))

        found = await self._newest_matching(chat_id, begins_the_turn)
        if found is None:
            return 0, []
        back, raw, message = found
        held = [raw]
        if content != _archived_line(message) and back > 1:  # the turn holds a reply: the next message
            [following] = await self._redis.lrange(self._messages_key(chat_id), 1 - back, 1 - back)
            if orjson.loads(following)["role"] == "assistant":
                held.append(following)
        return back, held

    async def _newest_matching(self, chat_id: str, wanted: Callable[[dict], bool]) -> tuple[int, bytes, dict] | None:
        """The newest message of the chat's L2 that is ``wanted``: (its place from the end, 1 for
        the last; as stored; decoded), or None. Read newest first, a page at a time: what is
        looked for (an edited message, a deleted turn) is mostly recent."""
        key, newer = self._messages_key(chat_id), 0
        while page := await self._redis.lrange(key, -(newer + _SCAN_PAGE), -(newer + 1)):
            for back, raw in enumerate(reversed(page), start=newer + 1):
                if wanted(message := orjson.loads(raw)):
                    return back, raw, message
            newer += len(page)
        return None

    async def clear(self, chat_id: str) -> None:
        await self._redis.delete(self._messages_key(chat_id), self._turns_key(chat_id), self._links_key(chat_id),
                                 self._people_key(chat_id))

    def _messages_key(self, chat_id: str) -> str:
        return f"{self._prefix}:l2:{_tag(chat_id)}"

    def _turns_key(self, chat_id: str) -> str:
        return f"{self._prefix}:turns:{_tag(chat_id)}"

    def _links_key(self, chat_id: str) -> str:
        return f"{self._prefix}:l2links:{_tag(chat_id)}"

    def _people_key(self, chat_id: str) -> str:
        return f"{self._prefix}:people:{_tag(chat_id)}"

    async def clear_messages(self, chat_id: str) -> None:
        """Empty the chat's conversation but keep its turn counter: turn numbers, and so the
        archive ids derived from them, go on increasing instead of colliding with old ones."""
        await self._redis.delete(self._messages_key(chat_id))


def _archived_line(message: dict) -> str:
    """A message as the archive of its turn shows it (the turn's first line, for its first message)."""
    if message["role"] == "user":
        return archive_content(message["content"], None)
    return archive_content(None, message["content"])


def _tag(chat_id: str) -> str:
    """``{chat id}``: the chat's Redis Cluster hash tag. An id starting with ``}`` would leave the
    tag empty (the whole key is hashed then, so the chat's keys part), so it goes by its digest,
    after a ``#`` no chat id's key has there."""
    if chat_id and not chat_id.startswith("}"):
        return f"{{{chat_id}}}"
    return f"#{{{hashlib.sha256(chat_id.encode('utf-8', 'surrogatepass')).hexdigest()}}}"


def _encode(message: Message) -> str:
    if message.get("role") not in get_args(Role):
        raise ValueError(f"unknown message role {message.get('role')!r}")
    if not isinstance(message.get("content"), str):
        raise ValueError("message content must be a string")
    timestamp = message.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise ValueError("message timestamp must be unix seconds (int or float)")
    return json.dumps(message, ensure_ascii=False)
