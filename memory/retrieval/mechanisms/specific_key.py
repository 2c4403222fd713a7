"""Specific-key: the entries holding a structural key the message names (an id, a path, a
version, a ticket), by exact lookup."""

from __future__ import annotations

from memory.retrieval.message.keys import structural_keys
from memory.retrieval.mechanism import Mechanism, RecallRun
from memory.turns import Hit

# The key regex is cheap (~0.2 ms per 1 000 characters).
_KEY_SCAN_CHARS = 20_000


async def _find(run: RecallRun) -> list[Hit] | None:
    run.outcome["keys"] = structural_keys(run.message[:_KEY_SCAN_CHARS])
    if not run.outcome["keys"]:
        return None  # scored zero: no structural key
    question = run.question
    return await question.reads.find_by_keys(await question.chats, run.outcome["keys"],
                                              run.settings.prefetch.max_results)


SPECIFIC_KEY = Mechanism("specific_key", _find, priority=0, exact_at_zero=True)
