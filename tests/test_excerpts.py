"""Long turns injected as the sentences that bear on the message, verbatim (memory/retrieval/choosing/excerpts.py),
and the newest of what was told first for a question about the current state (latest.py)."""

from __future__ import annotations

import pytest

from memory.retrieval.choosing.excerpts import (CUT, asks_about_this_chat, excerpt, excerpted, list_position,
                                                query_terms, term_weights)
from memory.retrieval.choosing.latest import asks_for_the_latest, newest_first

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


def test_a_stop_after_a_number_ends_a_sentence_but_a_lists_number_stays_with_its_item():
    reply = ("assistant: " + FILLER + "The construction of the house began in 2014. The contract was signed in 2015. "
             + FILLER + "Steps:\n1. Sign the contract.\n2. Pour the foundation.\n" + FILLER)
    cut = excerpt(reply, even("what year did the construction of the house begin?"), 400, 200)
    assert cut == f"assistant: {CUT.strip()} The construction of the house began in 2014.{CUT.rstrip()}"
    assert "2. Pour the foundation." in excerpt(reply, even("what is poured?"), 400, 200)


@pytest.mark.parametrize("message, position", [
    ("What was the 7th job in the list you provided?", 7), ("Remind me what the fifth bottle was", 5),
    ("What was number 3 on the list?", 3), ("Which one was #2?", 2), ("What did I buy in 2014?", None),
    ("What was the first thing I said?", 1), ("Which came first, the wedding or the party?", None),
])
def test_a_place_in_a_list_is_read_from_the_message(message, position):
    assert list_position(message) == position


def test_a_question_naming_a_place_in_a_list_gets_that_item():
    items = ["Virtual assistant", "Online tutor", "Freelance writer", "Bookkeeper", "Pet sitter", "Consultant",
             "Transcriptionist", "Reseller"]
    reply = ("assistant: Here are some ideas for work from home jobs for seniors:\n"
             + "\n".join(f"{n}. {item}: a job one can do from home, with hours of one's choosing."
                         for n, item in enumerate(items, 1))
             + "\n" + FILLER)
    message = "Can you remind me what was the 7th job in the list you provided?"
    weights = even(message)
    cut = excerpt(reply, weights, 400, 120, list_position(message), asks_about_this_chat(message))
    assert "7. Transcriptionist: a job one can do from home" in cut
    assert "Transcriptionist" not in excerpt(reply, weights, 400, 120)


def test_a_tables_row_brings_the_tables_header():
    table = ("|  | Day shift | Night shift |\n| --- | --- | --- |\n| Sunday | Admon | Sara |\n"
             "| Monday | Magdy | Admon |\n| Tuesday | Ehab | Nemr |\n")
    reply = "assistant: " + FILLER + "Here is the rota for the week:\n\n" + table + "\n" + FILLER
    cut = excerpt(reply, even("what was Admon's shift on Sunday?"), 400, 40)
    assert "|  | Day shift | Night shift |" in cut and "| Sunday | Admon | Sara |" in cut
    assert "Tuesday" not in cut


@pytest.mark.parametrize("message, asks_back", [
    ("What was the name of that hiking trail you recommended?", True),
    ("I'm looking back at our previous conversation about the case.", True),
    ("Can you remind me of the restaurant's name?", True), ("We discussed jobs for seniors earlier.", True),
    ("What hiking trail should I take?", False), ("How did you sleep?", False),
])
def test_a_question_about_what_was_said_in_the_chat_is_told_by_its_words(message, asks_back):
    assert asks_about_this_chat(message) is asks_back


def test_asked_back_the_best_sentence_brings_the_ones_beside_it_in_the_best_entry_only():
    words = ("One of the best trails with breathtaking views in the park is the GR-90. This trail takes you "
             "through the park's most stunning landscapes and offers panoramic views. The GR-90 is a circular trail.")
    reply = "assistant: " + FILLER + words + " " + FILLER
    message = "What was the trail you recommended that takes you through the park's most stunning landscapes?"
    best, other = excerpted([{"id": "c:turn_0001", "content": reply}, {"id": "c:turn_0002", "content": reply}],
                            message, 400, 120)
    assert words in best["content"]
    assert "is the GR-90." not in other["content"] and "most stunning landscapes" in other["content"]
