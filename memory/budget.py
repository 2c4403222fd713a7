"""Share a turn's token budget between the layers, and fit L2 and L3 into their shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from memory.aits import largest_budget
from memory.prompt import one_line
from memory.settings import Settings


@dataclass(frozen=True)
class Split:
    l0_l1: int  # identity + time + facts, as measured
    l2: int  # working memory (the conversation)
    l3: int  # recalled memories


def split_budget(total: int, l0_l1_tokens: int, *, l3_min_guarantee: int = 1200, l2_floor: int = 500) -> Split:
    """Priority-inverted split: after L0+L1, L3 claims its guarantee first, L2 gets the rest.

    L2's floor wins only when the remainder is too small for both; then L3 gets what is left.
    How long L2 has grown plays no part, so it can never starve L3.

    >>> split_budget(6000, 800)      # available 5200: L3 its 1200, L2 the other 4000
    Split(l0_l1=800, l2=4000, l3=1200)
    >>> split_budget(2000, 400)      # available 1600: 1200 would leave L2 400 < 500
    Split(l0_l1=400, l2=500, l3=1100)
    >>> split_budget(1000, 700)      # available 300: all of it to L2's floor
    Split(l0_l1=700, l2=300, l3=0)
    >>> split_budget(1000, 1500)     # L0+L1 alone exceed the budget
    Split(l0_l1=1500, l2=0, l3=0)
    """
    l0_l1 = max(0, l0_l1_tokens)
    available = max(0, total - l0_l1)
    l3 = min(max(0, l3_min_guarantee), available)
    l2 = available - l3
    if l2 < l2_floor:
        l2 = min(max(0, l2_floor), available)
        l3 = available - l2
    return Split(l0_l1=l0_l1, l2=l2, l3=l3)


def turn_split(total: int, l0_l1_tokens: int, settings: Settings) -> Split:
    """A turn's split with the settings' L3 guarantee and L2 floor."""
    return split_budget(total, l0_l1_tokens, l3_min_guarantee=settings.budget.l3_min_guarantee_tokens,
                        l2_floor=settings.budget.l2_floor_tokens)


def l2_ceiling(settings: Settings) -> int:
    """The most any turn's split gives L2 (the largest budget, nothing taken by L0+L1): L2
    older than that is neither read into a turn's state nor decoded."""
    return turn_split(largest_budget(**settings.aits.model_dump()), 0, settings).l2


def trim_working(messages: list[dict], budget: int, count: Callable[[str], int]) -> tuple[list[dict], int]:
    """The conversation messages that fit ``budget`` tokens, in chronological order, and their tokens.

    The newest messages are kept, walking back until the next older one does not fit
    (the window stays contiguous). The chat's first message (the topic-setter) is
    pinned when it is smaller than a quarter of the budget: it is taken first and its
    tokens count against the budget. Only ``content`` is counted (a message's ``tokens``,
    when it has one, is taken as that count).
    """
    if not messages or budget <= 0:
        return [], 0

    def size_of(message: dict) -> int:  # L2 messages carry their count since it was saved
        return message["tokens"] if "tokens" in message else count(message["content"])

    first_size = size_of(messages[0])
    pinned = first_size < budget / 4
    remaining = budget - first_size if pinned else budget
    kept: list[dict] = []
    for message in reversed(messages[1:] if pinned else messages):
        size = size_of(message)
        if size > remaining:
            break
        kept.append(message)
        remaining -= size
    kept.reverse()
    return ([messages[0], *kept] if pinned else kept), budget - remaining


def format_recall_line(recall: dict) -> str:
    """``[YYYY-MM-DD HH:MM] content`` (UTC), on one line (every archived turn has "user: …\nassistant: …")."""
    when = datetime.fromtimestamp(recall["timestamp"], timezone.utc).strftime("%Y-%m-%d %H:%M")
    return f"[{when}] {one_line(recall['content'])}"


def pack_recalls(
    recalls: list[dict], budget: int, count_each: Callable[[list[str]], list[int]]
) -> tuple[list[dict], int]:
    """The recalls whose lines fit ``budget`` tokens, in the given (best-first) order, and their tokens.

    A recall whose line does not fit is skipped and the next ones are still tried, so a
    long entry does not block shorter ones behind it. Tokens are those of
    :func:`format_recall_line`, i.e. of exactly what is injected (``count_each`` counts a
    list of lines); the block header is the caller's.
    """
    injected: list[dict] = []
    used = 0
    for recall, size in zip(recalls, count_each([format_recall_line(recall) for recall in recalls])):
        if used + size <= budget:
            injected.append(recall)
            used += size
    return injected, used
