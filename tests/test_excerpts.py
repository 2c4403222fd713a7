"""Long turns injected as the sentences that bear on the message, verbatim (memory/retrieval/excerpts.py),
and the newest of what was told first for a question about the current state (latest.py)."""

from __future__ import annotations

import pytest

from memory.retrieval.excerpts import CUT, excerpt, excerpted, query_terms, term_weights
from memory.retrieval.latest import asks_for_the_latest, newest_first

def even(message: str) -> dict[str, float]:
    """The message's terms, each weighing the same."""
    return dict.fromkeys(query_terms(message), 1.0)


FILLER = "Here is one more general idea you may like to consider for the weekend. " * 12
REPLY = (f"{FILLER}For a smoker, a brisket wants twelve hours at 110 degrees. {FILLER}Enjoy it.")
TURN = f"user: which wood suits my new smoker?\nassistant: {REPLY}"


def test_a_long_reply_is_cut_to_its_sentence_holding_the_messages_words_verbatim():
    cut = excerpt(TURN, even("how long does brisket take in the smoker?"), 400, 300)
    assert cut == ("user: which wood suits my new smoker?\n"
                   f"assistant: {CUT.strip()} For a smoker, a brisket wants twelve hours at 110 degrees.{CUT.rstrip()}")
    assert len(cut) < len(TURN) / 4


def test_short_messages_stay_whole_and_a_reply_holding_no_word_keeps_only_its_label():
    short = "user: we adopted a puppy\nassistant: lovely, what is its name?"
    assert excerpt(short, even("what did we adopt?"), 400, 300) == short
    assert excerpt(TURN, even("what is the capital of Peru?"), 400, 300) == \
        "user: which wood suits my new smoker?\nassistant: …"


def test_a_long_message_of_the_person_keeps_its_first_sentence_when_none_holds_a_word():
    pasted = "user: " + "I have a question about my garden. " + FILLER
    assert excerpt(pasted, even("capital of Peru"), 400, 300) == \
        f"user: I have a question about my garden.{CUT.rstrip()}"


def test_the_best_sentences_are_taken_up_to_the_characters_allowed_and_kept_in_their_order():
    text = "user: " + " ".join([
        "Alpha is first.", FILLER, "The smoker broke on Monday.", FILLER, "A new smoker arrived Friday.", FILLER])
    cut = excerpt(text, even("when did the new smoker arrive?"), 400, 40)
    assert cut == f"user: {CUT.strip()} A new smoker arrived Friday.{CUT.rstrip()}"
    both = excerpt(text, even("when did the new smoker arrive?"), 400, 300)
    assert both == (f"user: {CUT.strip()} The smoker broke on Monday.{CUT}A new smoker arrived Friday.{CUT.rstrip()}")


def test_a_sentence_longer_than_the_excerpt_is_cut_in_windows_at_spaces():
    unbroken = "user: " + " ".join(f"word{n}" for n in range(400)) + " smoker " + " ".join(f"w{n}" for n in range(200))
    cut = excerpt(unbroken, even("smoker"), 400, 300)
    assert "smoker" in cut and len(cut) < 400
    assert all(piece in unbroken for piece in cut.removeprefix("user: ").split(CUT.strip()) if piece.strip())


def test_a_rare_word_of_the_message_outweighs_words_every_candidate_shares():
    texts = ["the file in the records room", "another file in records", "records of a file", "my jumpsuit and a file in records"]
    weights = term_weights(query_terms("which file in the records matched my jumpsuit?"), texts)
    assert weights["jumpsuit"] > weights["file"] == weights["record"]
    reply = "assistant: " + " ".join(["I search the records room for the file number again."] * 8
                                     + ["I look down at my jumpsuit and see the designation LIV."])
    assert "jumpsuit" in excerpt(reply, weights, 400, 80)


def test_only_turns_with_a_long_message_are_copied_and_marked_as_excerpts():
    short = {"id": "c:turn_0001", "content": "user: hi\nassistant: hello"}
    long = {"id": "c:turn_0002", "content": TURN}
    kept, cut = excerpted([short, long], "how long for a brisket?", 400, 300)
    assert kept is short and cut["excerpt"] is True and cut["id"] == long["id"]
    assert long["content"] == TURN  # the hit given is not changed


def test_a_turn_of_one_message_either_side_is_cut_as_that_message():
    reply_alone = f"assistant: {REPLY}"
    assert excerpt(reply_alone, even("brisket"), 400, 300).startswith(f"assistant: {CUT.strip()} For a smoker")
    assert excerpt("user: " + FILLER, even("weekend idea"), 400, 100).startswith("user: Here is one more")


@pytest.mark.parametrize("message, asks", [
    ("What am I currently reading?", True), ("Where did I go on my most recent trip?", True),
    ("Do I still run on Sundays?", True), ("What's my highest score so far?", True),
    ("Now that I moved, what should I plant?", False), ("What did I read in March?", False),
])
def test_a_question_about_the_current_state_is_told_by_its_words(message, asks):
    assert asks_for_the_latest(message) is asks


def test_what_stands_out_comes_newest_first_and_context_after_it():
    chosen = [{"id": "a", "timestamp": 10.0}, {"id": "ctx", "timestamp": 99.0}, {"id": "b", "timestamp": 30.0},
              {"id": "c", "timestamp": 20.0}]
    assert [hit["id"] for hit in newest_first(chosen, {"a", "b", "c"})] == ["b", "c", "a", "ctx"]


def test_a_sentence_introducing_a_list_brings_its_first_item():
    reply = ("assistant: " + FILLER + "Two firms that put their staff's safety first like Acme are:\n"
             "1. Northwind - an outdoor brand known for its care of its people.\n2. Contoso - an airline.\n" + FILLER)
    cut = excerpt(reply, even("which two firms put staff safety first like Acme?"), 400, 80)
    assert "like Acme are:\n1. Northwind - an outdoor brand known for its care of its people." in cut
