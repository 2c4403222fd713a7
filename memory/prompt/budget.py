"""Share a turn's token budget between the layers, and fit L2 and L3 into their shares."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

from memory.prompt.aits import assess
from memory.prompt.blocks import one_line, speaker_name
from memory.prompt.tokens import tokens_at_least
from memory.settings import MemorySettings
from memory.turns import USER_PREFIX, Hit, LayerTokens, Message

# The metadata field of an L3 entry holding its recall line's tokens (``line_tokens_stamp``):
# counted as the entry is written, behind the reply, not when a turn packs its prompt.
LINE_TOKENS = "line_tokens"


def split_budget(total: int, l0_l1_tokens: int, *, l3_min_guarantee: int, l2_floor: int) -> LayerTokens:
    """Priority-inverted split: after L0+L1, L3 claims its guarantee first, L2 gets the rest.

    L2's floor wins only when the remainder is too small for both; then L3 gets what is left.
    How long L2 has grown plays no part, so it can never starve L3. With a guarantee of 1200
    and a floor of 500:

    >>> split_budget(6000, 800, l3_min_guarantee=1200, l2_floor=500)  # L3 its 1200, L2 the other 4000
    {'l0_l1': 800, 'l2': 4000, 'l3': 1200}
    >>> split_budget(2000, 400, l3_min_guarantee=1200, l2_floor=500)  # 1200 would leave L2 400 < 500
    {'l0_l1': 400, 'l2': 500, 'l3': 1100}
    >>> split_budget(1000, 700, l3_min_guarantee=1200, l2_floor=500)  # all 300 to L2's floor
    {'l0_l1': 700, 'l2': 300, 'l3': 0}
    >>> split_budget(1000, 1500, l3_min_guarantee=1200, l2_floor=500)  # L0+L1 alone exceed it
    {'l0_l1': 1500, 'l2': 0, 'l3': 0}

    Args:
        total: the turn's token budget (AITS).
        l0_l1_tokens: what the always-present head takes (identity, time, facts, tool guidance).
        l3_min_guarantee: ``budget.l3_min_guarantee_tokens``.
        l2_floor: ``budget.l2_floor_tokens``.

    Returns:
        The shares of L0+L1 (as measured), L2 and L3.
    """
    l0_l1 = max(0, l0_l1_tokens)
    available = max(0, total - l0_l1)
    l3 = min(max(0, l3_min_guarantee), available)
    l2 = available - l3
    if l2 < l2_floor:
        l2 = min(max(0, l2_floor), available)
        l3 = available - l2
    return LayerTokens(l0_l1=l0_l1, l2=l2, l3=l3)


def turn_split(total: int, l0_l1_tokens: int, settings: MemorySettings) -> LayerTokens:
    """A turn's split with the settings' L3 guarantee and L2 floor."""
    return split_budget(total, l0_l1_tokens, l3_min_guarantee=settings.budget.l3_min_guarantee_tokens,
                        l2_floor=settings.budget.l2_floor_tokens)


def l2_ceiling(message: str, settings: MemorySettings) -> int:
    """The most the split of this message's turn can give L2 (its AITS budget, nothing taken by
    L0+L1): L2 older than that is neither read into the turn's state nor decoded."""
    return turn_split(assess(message, **settings.aits.model_dump())["budget"], 0, settings)["l2"]


def trim_working(messages: list[Message], budget: int, count: Callable[[str], int]) -> tuple[list[Message], int]:
    """The conversation messages that fit ``budget`` tokens, in chronological order, and their tokens.

    The newest messages are kept, as :func:`newest_within` takes and counts them. The chat's
    first message (the topic-setter) is pinned when it is smaller than a quarter of the budget:
    it is taken first and its tokens count against the budget.
    """
    if not messages or budget <= 0:
        return [], 0
    first_size = _message_tokens(messages[0], count)
    if first_size < budget / 4:
        kept, used = newest_within(reversed(messages[1:]), budget - first_size, count)
        return [messages[0], *kept], first_size + used
    return newest_within(reversed(messages), budget, count)


def newest_within(newest_first: Iterable[Message], budget: int,
                  count: Callable[[str], int]) -> tuple[list[Message], int]:
    """The newest conversation messages whose tokens add up to at most ``budget``, in
    chronological order, and their tokens.

    Messages are taken from ``newest_first`` until the next one does not fit (the window stays
    contiguous), so none past that one is read: a lazy iterable (L2 as it is decoded) is
    decoded only that far. Only ``content`` is counted; a message's ``tokens``, counted when it
    was saved, is taken as that count.
    """
    kept: list[Message] = []
    used = 0
    for message in newest_first:
        size = _message_tokens(message, count)
        if used + size > budget:
            break
        kept.append(message)
        used += size
    kept.reverse()
    return kept, used


def _message_tokens(message: Message, count: Callable[[str], int]) -> int:
    if "tokens" not in message:
        return count(message["content"])
    return tokens_at_least(message["content"], message["tokens"])  # it may have been saved before the floor


def format_recall_line(recall: Mapping[str, Any], people: Mapping[str, str] | None = None) -> str:
    """``[YYYY-MM-DD HH:MM] content`` (UTC), on one line (every archived turn has "user: …\nassistant: …").
    With ``people`` (a chat of several: user id -> name), the user's label is their name, as said then."""
    when = datetime.fromtimestamp(recall["timestamp"], timezone.utc).strftime("%Y-%m-%d %H:%M")
    content = recall["content"]
    if people is not None and content.startswith(USER_PREFIX):
        metadata = recall.get("metadata") or {}
        content = f"{_label(metadata.get('name'), str(metadata.get('user_id', '')), people)}: " \
                  f"{content.removeprefix(USER_PREFIX)}"
    return f"[{when}] {one_line(content)}"


def named_messages(messages: list[Message], people: Mapping[str, str]) -> list[Message]:
    """L2's messages for a chat of several people: each person's begins with their name, as said
    then (its tokens counted again, as the model is sent it)."""
    return [Message(role="user", content=f"{_label(m.get('name'), uid, people)}: {m['content']}",
                    timestamp=m.get("timestamp", 0.0))
            if m["role"] == "user" and (uid := m.get("user_id", "")) else m for m in messages]


def _label(name: str | None, user_id: str, people: Mapping[str, str]) -> str:
    """Who said a line, as the prompt names them: the name they gave then, else their latest, else their id."""
    return speaker_name(name or people.get(user_id) or user_id)


def line_tokens_stamp(line: str, tokens: int) -> str:
    """What an L3 entry stores of its :func:`format_recall_line` (``LINE_TOKENS``): the line's
    tokens, and its checksum, so that a line stored otherwise, or rendered otherwise since, is
    counted again rather than taken at a stale count."""
    return f"{tokens}:{zlib.crc32(line.encode('utf-8', 'surrogatepass')):08x}"


def stamped_tokens(recall: Mapping[str, Any], line: str) -> int | None:
    """The tokens of ``line``, the recall's line, as its entry stored them (None: not stored, or
    stored for another line)."""
    stamp = (recall.get("metadata") or {}).get(LINE_TOKENS)
    if not isinstance(stamp, str):
        return None
    tokens = stamp.partition(":")[0]
    if not tokens.isdigit() or line_tokens_stamp(line, int(tokens)) != stamp:
        return None
    return tokens_at_least(line, int(tokens))  # it may have been stamped before the floor


class PackedRecalls(NamedTuple):
    recalls: list[Hit]  # those that fit, best first
    lines: list[str]  # their lines as injected (format_recall_line), in that order
    tokens: int  # of those lines


def pack_recalls(recalls: list[Hit], budget: int, count_each: Callable[[list[str]], list[int]],
                 people: Mapping[str, str] | None = None) -> PackedRecalls:
    """The recalls whose lines fit ``budget`` tokens, in the given (best-first) order.

    A recall whose line does not fit is skipped and the next ones are still tried, so a
    long entry does not block shorter ones behind it. Tokens are those of
    :func:`format_recall_line`, i.e. of exactly what is injected; the block header is the caller's.

    Args:
        recalls: the candidates, best first.
        budget: the L3 share of the prompt, in tokens.
        count_each: the tokens of each of a list of lines.
        people: a chat of several people's (user id -> name): lines name their speakers.

    Returns:
        What fits, with the lines it was counted as (the lines to inject) and their tokens.
    """
    lines = [format_recall_line(recall, people) for recall in recalls]
    stored = [stamped_tokens(recall, line) for recall, line in zip(recalls, lines)]
    counted = iter(count_each([line for line, tokens in zip(lines, stored) if tokens is None]))
    sizes = [next(counted) if tokens is None else tokens for tokens in stored]
    injected: list[Hit] = []
    injected_lines: list[str] = []
    used = 0
    for recall, line, size in zip(recalls, lines, sizes):
        if used + size <= budget:
            injected.append(recall)
            injected_lines.append(line)
            used += size
    return PackedRecalls(injected, injected_lines, used)
