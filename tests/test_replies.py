"""What every face says when a turn, a command or a tool fails: one mapping (graph/replies.py)."""

from __future__ import annotations

from graph.replies import APOLOGY, MODEL_UNREACHABLE, error_line, failed_for, failure_reply, failure_report
from graph.runner import ModelUnavailable
from nodes.state import InvalidTurn


def kept_unanswered(cause: BaseException) -> ModelUnavailable:
    """What the runner raises when a turn's model failed and its message was kept as turn 7."""
    try:
        raise ModelUnavailable(7) from cause
    except ModelUnavailable as exc:
        return exc


def test_the_person_who_wrote_reads_a_refusal_a_kept_message_or_an_apology():
    assert failure_reply(InvalidTurn("the message is empty")) == "I cannot take that message: the message is empty."
    assert failure_reply(kept_unanswered(TimeoutError("slow"))) == MODEL_UNREACHABLE
    assert failure_reply(RuntimeError("Redis went away")) == APOLOGY


def test_a_terminal_reads_what_failed_in_one_line_and_whether_the_message_was_kept():
    cause = TimeoutError("the model\n  did not answer")
    assert failed_for(kept_unanswered(cause)) is cause
    assert failure_report(kept_unanswered(cause)) == (
        "the model failed: TimeoutError: the model did not answer; the message is kept as turn 7: "
        "no need to send it again")
    assert failure_report(InvalidTurn("the message is empty")) == "the turn failed: the message is empty"


def test_errors_that_say_what_to_do_are_shown_as_they_are_others_by_their_type():
    assert error_line(ValueError("after must be ISO-8601")) == "after must be ISO-8601"
    assert error_line(LookupError("nothing of the chat is archived yet")) == "nothing of the chat is archived yet"
    assert error_line(ConnectionError("All connection attempts failed")) == (
        "ConnectionError: All connection attempts failed")
    assert error_line(RuntimeError()) == "RuntimeError"
