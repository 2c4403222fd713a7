"""Words: how a text is cut into words and folded into the word index's terms, in any script
and language, and whether a text reads as English (which the paired encoder asks)."""

from memory.words.folding import AUTO, NO_STEMMER, SCHEME, QueryTerms, Words, in_latin_script, names_nothing, stemmers, terms
from memory.words.language import reads_as_english

__all__ = ["AUTO", "NO_STEMMER", "SCHEME", "QueryTerms", "Words", "in_latin_script", "names_nothing", "reads_as_english",
           "stemmers", "terms"]
