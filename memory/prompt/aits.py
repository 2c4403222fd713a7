"""AITS (Adaptive Intent Token Scaling): this turn's token budget, from the message alone."""

from __future__ import annotations

import re
import unicodedata

from memory.turns import Assessment

# Interrogative / analytical cues: the user wants an explanation, so context pays off.
# Romanian is listed with and without diacritics (both are typed); "de ce" is two
# tokens, so only its one-word spelling "dece" (and "ce") count.
HIGH_CUES = frozenset(
    {
        "what", "how", "why", "when", "where", "explain", "describe", "summarize",
        "summarise", "analyze", "analyse", "compare", "list", "define", "outline",
        "elaborate", "discuss", "evaluate",
        "cum", "dece", "ce", "când", "cand", "unde", "explică", "explica", "rezumă",
        "rezuma", "descrie", "analizează", "analizeaza", "compară", "compara",
        "enumeră", "enumera", "detaliază", "detaliaza",
    }
)
# Auxiliaries and who/which questions.
MEDIUM_CUES = frozenset(
    {
        "who", "whom", "whose", "which", "is", "are", "was", "were", "can", "could",
        "should", "would", "will", "shall", "might", "must", "do", "does", "did",
        "has", "have", "had",
        "care", "cine", "este", "e", "sunt", "era", "poate", "pot", "poți", "trebuie",
        "fost", "ai", "ar", "aș", "vei", "va",
    }
)
EMPTY_CONFIDENCE = 0.2
HIGH_CONFIDENCE = 0.8
EXTRA_HIGH_CUE_STEP = 0.1
# Equal by spec (there is no low list: a greeting is a statement); kept apart so
# tuning can separate them.
MEDIUM_CONFIDENCE = 0.5
STATEMENT_CONFIDENCE = 0.5

# Multi-part connectors, matched in the lower-cased text; "și"/"sau" as whole tokens.
CONNECTOR_SUBSTRINGS = (" and ", " or ", " plus ", ";", ",")
CONNECTOR_WORDS = frozenset({"și", "sau"})
LENGTH_SATURATION = 200  # characters at which the length part of complexity is full
LENGTH_WEIGHT = 0.7
CONNECTOR_WEIGHT = 0.3

# Romanian ş/ţ (cedilla) are the legacy spelling of ș/ț (comma below).
_LEGACY_ROMANIAN = str.maketrans("şţ", "șț")
# Punctuation and symbols ("?", "-", "'", "€", emoji) separate words; letters of any script stay.
_NON_WORD = re.compile(r"[^\w\s]+")


def assess(
    message: str, *, base: int, confidence_multiplier: int, complexity_bonus: int, hard_cap: int
) -> Assessment:
    """``budget = min(hard_cap, round(base + confidence·multiplier + complexity·bonus))``.

    Args:
        message: the user's message, the only thing the budget is sized from.
        base, confidence_multiplier, complexity_bonus, hard_cap: the ``aits`` settings.

    Returns:
        The message's confidence and complexity (each in [0, 1]) and the turn's token budget.
    """
    tokens = cue_tokens(message)
    confidence = _confidence(tokens)
    complexity = _complexity(message, tokens)
    budget = min(hard_cap, round(base + confidence * confidence_multiplier + complexity * complexity_bonus))
    return Assessment(confidence=confidence, complexity=complexity, budget=budget)


def cue_tokens(message: str) -> list[str]:
    """Lower-cased words, punctuation and symbols stripped ("what's" -> what, s; "explică-mi" -> explică, mi).

    Letters of any script are kept ("când", "explică"); a message of only "?!" has no tokens.
    """
    text = unicodedata.normalize("NFC", message).lower().translate(_LEGACY_ROMANIAN)
    return _NON_WORD.sub(" ", text).split()


def _confidence(tokens: list[str]) -> float:
    if not tokens:
        return EMPTY_CONFIDENCE
    high = HIGH_CUES.intersection(tokens)  # distinct cues: "why why why" is one question
    if high:
        # round: 0.8 + 0.1 is 0.9000000000000001 in floats, and it is logged.
        return min(1.0, round(HIGH_CONFIDENCE + EXTRA_HIGH_CUE_STEP * (len(high) - 1), 10))
    if MEDIUM_CUES.intersection(tokens):
        return MEDIUM_CONFIDENCE
    return STATEMENT_CONFIDENCE


def _complexity(message: str, tokens: list[str]) -> float:
    lowered = message.lower()
    has_connector = any(c in lowered for c in CONNECTOR_SUBSTRINGS) or not CONNECTOR_WORDS.isdisjoint(tokens)
    return min(len(message) / LENGTH_SATURATION, 1.0) * LENGTH_WEIGHT + CONNECTOR_WEIGHT * has_connector
