"""What a face says when a turn, a command or a tool fails: one mapping of GOAT's errors to the
words every face shows (Telegram's replies, goat chat's error lines, MCP's tool errors), so a
failure reads the same wherever it happens."""

from __future__ import annotations

from graph.runner import ModelUnavailable
from memory.errors import BackendUnavailable, FactsFull, SearchFailed
from nodes.services import ModelNotConfigured
from nodes.state import InvalidTurn, TurnConflict

APOLOGY = "Sorry, something went wrong on my side and I could not answer. Please send that again."
MODEL_UNREACHABLE = ("My language model cannot be reached right now, so I cannot answer yet. Your message is "
                     "kept in our conversation: no need to send it again, I will have it in mind when you write next.")
# Errors that say what went wrong, and what to do, in their own words: shown as they are. A
# ValueError or a LookupError is a refusal of what was asked (a bad argument, nothing archived yet).
SAYS_WHAT_TO_DO = (ModelNotConfigured, TurnConflict, BackendUnavailable, FactsFull, SearchFailed, ValueError,
                   LookupError)


def refusal(problem: InvalidTurn) -> str:
    """The reply to a message no turn can take.

    Args:
        problem: why it cannot be taken.
    Returns:
        The reply, naming the problem.
    """
    return f"I cannot take that message: {problem}."


def failure_reply(error: BaseException) -> str:
    """What the person who sent a message reads when its turn failed (Telegram): a message no turn
    can take, refused; one whose model failed, kept (no need to send it again); any other failure,
    an apology (nothing is half-written: sending it again works).

    Args:
        error: what the turn raised.
    Returns:
        The reply.
    """
    if isinstance(error, InvalidTurn):
        return refusal(error)
    return MODEL_UNREACHABLE if isinstance(error, ModelUnavailable) else APOLOGY


def failure_report(error: BaseException) -> str:
    """What whoever runs a turn at a terminal reads when it failed (goat chat): what failed, in one
    line, and whether the message was kept.

    Args:
        error: what the turn raised.
    Returns:
        The report, without the face's prefix; its secrets still to be masked.
    """
    if isinstance(error, ModelUnavailable):
        return (f"the model failed: {error_line(failed_for(error))}; the message is kept as turn {error.kept_as}: "
                "no need to send it again")
    return f"the turn failed: {error_line(error)}"


def failed_for(error: BaseException) -> BaseException:
    """What really failed: the model's error for a message kept unanswered, else the error itself."""
    return (error.__cause__ or error) if isinstance(error, ModelUnavailable) else error


def error_line(error: BaseException) -> str:
    """One line for a failure: errors that say what to do are shown as they are; others are named
    by their type.

    Args:
        error: what was raised.
    Returns:
        The line; its secrets still to be masked.
    """
    text = " ".join(str(error).split())
    if isinstance(error, SAYS_WHAT_TO_DO):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
