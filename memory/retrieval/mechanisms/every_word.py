"""An explicit search's own list, never prefetch's: the entries holding every word searched for,
however common (the word list skips common words, and in a small chat a name is common)."""

from __future__ import annotations

from memory.retrieval.mechanism import Mechanism, RecallRun
from memory.retrieval.finding.search import WORD_SCAN_CHARS
from memory.turns import Hit


async def _find(run: RecallRun) -> list[Hit]:
    after, before = run.query.period or (None, None)
    question = run.question
    return await question.reads.holding_words(await question.chats, run.message[:WORD_SCAN_CHARS],
                                              await question.scale, run.settings.prefetch.max_results, after, before)


EVERY_WORD = Mechanism("every_word", _find, priority=4, prefetch=False)
