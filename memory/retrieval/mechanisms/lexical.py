"""Thematic's word half: the entries best matching the message's words (BM25 over the chats'
word index), as the question's search found them, on the question's scale."""

from __future__ import annotations

from memory.retrieval.choosing.excerpts import holds_a_long_message
from memory.retrieval.mechanism import BY_WORDS, Mechanism, RecallRun
from memory.settings import Retrieval
from memory.turns import Hit


async def _find(run: RecallRun) -> list[Hit]:
    return await run.question.by_words


def _ratio(retrieval: Retrieval, hit: Hit, meaning_first: bool) -> float:
    # A long reply or pasted page holds some of any message's words.
    long = holds_a_long_message(hit["content"], retrieval.whole_message_chars)
    return retrieval.long_lexical_relevance_ratio if long else retrieval.lexical_relevance_ratio


def _weight(retrieval: Retrieval, meaning_first: bool) -> float:
    return retrieval.meaning_first_lexical_weight if meaning_first else 1.0


# Fused in BM25's order (word scores and distances share no scale), and with no background
# nothing of it stands out: words alone cannot tell relevance.
LEXICAL = Mechanism("lexical", _find, priority=3, topical=True, question_search=BY_WORDS, ratio=_ratio,
                    weight=_weight, by_distance=False, gap_without_background=False)
