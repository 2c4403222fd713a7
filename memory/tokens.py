"""Offline token counts, with the WordPiece tokenizer bundled with the local MiniLM model."""

from __future__ import annotations

import threading

from tokenizers import Tokenizer

from memory.embeddings import load_tokenizer

_lock = threading.Lock()
_tokenizer: Tokenizer | None = None


def count_tokens(text: str) -> int:
    """WordPiece tokens in ``text``, without special tokens and without truncation.

    It is MiniLM's tokenizer, not the chat model's: an offline, deterministic measure
    that is the same everywhere, used to share budgets between the layers.
    """
    if not text:
        return 0
    return len(_get_tokenizer().encode(text, add_special_tokens=False).ids)


def _get_tokenizer() -> Tokenizer:
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:  # another thread may have loaded it while this one waited
                _tokenizer = load_tokenizer(truncate=False)
    return _tokenizer
