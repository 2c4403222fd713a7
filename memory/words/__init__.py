"""Words: how a text is cut into words and folded into the word index's terms, in any script
and language, and whether a text reads as English (which the paired encoder asks)."""

from memory.words.folding import (
    AUTO, NO_STEMMER, SCHEME, QueryTerms, Words, in_latin_script, names_nothing, reading_version, reads_as_english, stemmers, terms,
)

__all__ = ["AUTO", "NO_STEMMER", "SCHEME", "QueryTerms", "Words", "in_latin_script", "names_nothing", "reading_version",
           "reads_as_english", "stemmers", "terms"]
