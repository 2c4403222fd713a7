"""Offline token counts: English with the WordPiece tokenizer of the local MiniLM model, every
other language with multilingual-e5-small's SentencePiece (XLM-RoBERTa's vocabulary), so that
budgets hold in every script (WordPiece cuts a Russian line into ~2.5 times the tokens, a
Japanese one into ~1.8 times)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache

from tokenizers import Tokenizer

from memory.encoders.e5_weights import E5Tokenizer, read_tokenizer
from memory.encoders.minilm_weights import load_tokenizer
from memory.words import reads_as_english

# Every turn re-counts the chat's recent messages and its recalled lines while packing the
# prompt: remembering the counts of recently seen texts makes that a lookup (12 ms → <1 ms
# per turn at 100 messages).
_REMEMBERED = 8192
_counts: OrderedDict[str, int] = OrderedDict()
_counts_lock = threading.Lock()
# No text counts as fewer tokens than one per MAX_CHARS_PER_TOKEN characters: WordPiece reads a
# word of over 100 characters as one [UNK] and drops zero-width characters, so a text built of
# them would pass every budget while the model is sent all of it. Ordinary text in any script
# takes 3 to 6 characters a token (the README's densest paragraph, a drawing, 6.0): the floor
# counts up only such texts.
MAX_CHARS_PER_TOKEN = 8


def count_tokens(text: str) -> int:
    """Tokens in ``text``, without special tokens and without truncation: MiniLM's WordPiece
    for an English text, e5's SentencePiece for any other; never fewer than
    :func:`tokens_at_least` allows.

    Not the chat model's tokenizer: an offline, deterministic measure that is the same
    everywhere, used to share budgets between the layers.
    """
    return count_tokens_each([text])[0]


def count_tokens_each(texts: Sequence[str]) -> list[int]:
    """:func:`count_tokens` of each text. Those not counted recently are counted in one batch:
    fresh recalled lines cost half as much that way (1.6 against 3.7 ms for 15)."""
    with _counts_lock:
        known = {text: _counts[text] for text in texts if text in _counts}
        for text in known:
            _counts.move_to_end(text)
    fresh = list(dict.fromkeys(text for text in texts if text and text not in known))
    if fresh:
        counted = dict(zip(fresh, count_unremembered(fresh)))
        with _counts_lock:
            _counts.update(counted)
            while len(_counts) > _REMEMBERED:
                _counts.popitem(last=False)
        known |= counted
    return [known.get(text, 0) for text in texts]


def count_unremembered(texts: Sequence[str]) -> list[int]:
    """:func:`count_tokens` of each text, in one batch, none of them remembered: for texts
    counted once as they are stored (an import's thousands would push a turn's out)."""
    read_as_english = [reads_as_english(text) for text in texts]
    english = [text for text, yes in zip(texts, read_as_english) if yes and text]
    others = [text for text, yes in zip(texts, read_as_english) if not yes and text]
    counts = iter(len(encoding.ids) for encoding in _tokenizer().encode_batch_fast(english, add_special_tokens=False))
    other_counts = iter(len(ids) for ids in _multilingual_tokenizer().content_ids(others)) if others else iter(())
    return [tokens_at_least(text, next(counts) if yes else next(other_counts)) if text else 0
            for text, yes in zip(texts, read_as_english)]


def tokens_at_least(text: str, tokens: int) -> int:
    """A count of ``text`` raised to the floor its length sets (``MAX_CHARS_PER_TOKEN``); a count
    stored before the floor is taken through it too.

    Args:
        text: what was counted.
        tokens: its count by the tokenizer (or as stored).
    Returns:
        ``tokens``, or one token per ``MAX_CHARS_PER_TOKEN`` characters of ``text`` when that is more.
    """
    return max(tokens, -(-len(text) // MAX_CHARS_PER_TOKEN))


@cache
def _tokenizer() -> Tokenizer:
    # Loaded once, on first use; a rare double load in a race is harmless (it is immutable).
    return load_tokenizer(truncate=False)


@cache
def _multilingual_tokenizer() -> E5Tokenizer:
    # Loaded at the first text in another language than English (~0.4 s, ~50 MB): an English
    # chat never pays for it.
    return read_tokenizer()
