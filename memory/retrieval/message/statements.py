"""Whether a message is a statement about the speaker, not a question or a request.

"My boss talked me into covering the weekend rota, and now I barely get a night off" asks
nothing; what bears on it is what the person told months ago ("since I started turning down
extra shifts, my evenings feel like my own again"), which shares its meaning more than its words. Such a message is judged by meaning first
(:mod:`memory.retrieval.choosing.merge`); a question ("when did I…", "what is the name of…") by meaning,
words and the rest fused.
"""

from __future__ import annotations

import re

# First-person words of the languages people most often write to GOAT in (English, Russian,
# Spanish, German, French, Portuguese, Italian): a statement about oneself names one of them.
_FIRST_PERSON = frozenset("""
    i i'm im i've ive i'd i'll me my mine myself we we're we've we'd we'll us our ours ourselves
    я меня мне мной мой моя моё мое мои моего моей моих мы нас нам нами наш наша наше наши
    yo mi mí mis mío mía conmigo nosotros nosotras nuestro nuestra nuestros nuestras
    ich mich mir mein meine meinen meinem meiner wir uns unser unsere
    je j' moi mon ma mes nous notre nos
    eu meu minha meus minhas nós nosso nossa
    io mio miei noi nostro nostra
""".split())
# How a question or a request opens, in the same languages: a verb that asks ("did you…",
# "tell me…", "расскажи…") opens one whatever follows it; a question word only when a verb or a
# measure follows it ("when did…", "how many…"), for "when I was little, I…" states.
_ASKING_VERBS = frozenset("""
    is are am was were do does did can could will would should shall may might must have has had
    tell show give find list remind explain write describe
    расскажи напомни покажи скажи найди подскажи объясни
    dime recuérdame recuerda muestra cuéntame busca explica
    sag sage zeig zeige erzähl erzähle erinnere erinner nenne finde erkläre
    dis montre rappelle explique trouve
    diga mostra lembra explica
    dimmi ricordami mostra spiega
""".split())
_QUESTION_WORDS = frozenset("""
    what when where who whom whose which why how
    что когда где кто какой какая какое какие почему зачем как сколько
    qué cuándo dónde quién cuál cómo cuánto cuántos cuántas
    wann wo wer welche welcher warum wie
    quoi quand où qui quel quelle pourquoi comment combien
""".split())
_ASKED_AFTER_QUESTION_WORD = _ASKING_VERBS | frozenset("many much long often far old ли".split())
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
# A statement names its speaker in its first sentences; reading further costs ~0.3 ms per 2 000
# characters on the turn's path.
_SCANNED_CHARS = 500


def speaks_of_oneself(text: str) -> bool:
    """Whether ``text`` is a statement about the speaker: it names the speaker (a first-person
    word), asks nothing (no question mark) and does not open as a question or a request does.

    Args:
        text: the message (its first lines are enough).

    Returns:
        True for "I finally booked the flights for our trip" and "when I was little, I feared
        dogs"; False for "when did I book the flights", "remind me of my flight" and "hi!".
    """
    if "?" in text or "¿" in text:
        return False
    words = [word.replace("’", "'") for word in _WORD.findall(text[:_SCANNED_CHARS].lower())]
    if not words or words[0] in _ASKING_VERBS or (
            words[0] in _QUESTION_WORDS and (len(words) < 2 or words[1] in _ASKED_AFTER_QUESTION_WORD)):
        return False
    return any(word in _FIRST_PERSON or word.startswith("j'") for word in words)
