"""Recall and selection: the retrieval pipeline a turn runs before the model (the ranked lists
of the registered mechanisms, under a deadline: :mod:`memory.retrieval.finding`), and the
selection that chooses what is injected among them (:mod:`memory.retrieval.selection`, over the
pure rules of :mod:`memory.retrieval.choosing`), reading the message with
:mod:`memory.retrieval.message`."""

from memory.retrieval.choosing.merge import choose_recalls, why_kept
from memory.retrieval.explicit_search import iso_bound

__all__ = ["choose_recalls", "iso_bound", "why_kept"]
