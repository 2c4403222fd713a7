"""Recall and selection: the retrieval pipeline a turn runs before the model (the ranked lists
by meaning, words, time range and key, under a deadline), and the pure functions that fuse
them and choose what is injected (the scale-invariant gap test)."""

from memory.retrieval.choosing.beside import beside_verdicts
from memory.retrieval.choosing.excerpts import excerpted
from memory.retrieval.explicit_search import iso_bound
from memory.retrieval.choosing.merge import choose_and_explain, choose_recalls, why_kept
from memory.retrieval.choosing.next_nearest import with_next_nearest
from memory.retrieval.finding.recall import STATEMENT

__all__ = ["STATEMENT", "beside_verdicts", "choose_and_explain", "choose_recalls", "excerpted", "iso_bound", "why_kept",
           "with_next_nearest"]
