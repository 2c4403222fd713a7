"""What a face says when a turn, a command or a tool fails: one mapping of GOAT's errors to the
words every face shows (Telegram's replies, goat chat's error lines, MCP's tool errors), so a
failure reads the same wherever it happens."""

from __future__ import annotations

from memory.errors import BackendUnavailable, ChatHeldByOthers, FactsFull, ForgetUnfinished, SearchFailed
from nodes.state import InvalidTurn, TurnConflict

APOLOGY = "Sorry, something went wrong on my side and I could not answer. Please send that again."
MODEL_UNREACHABLE = ("My language model cannot be reached right now, so I cannot answer yet. Your message is "
                     "kept in our conversation: no need to send it again, I will have it in mind when you write next.")

# Memory's failures, as every face tells them apart (a face names these, never memory's errors):
# a backend unreachable or its disk full, what was written before staying whole;
MEMORY_UNREACHABLE: tuple[type[Exception], ...] = (BackendUnavailable,)
# a chat someone else writes to, which an import or a claim must not enter;
CHAT_OF_OTHERS: tuple[type[Exception], ...] = (ChatHeldByOthers,)
# a forget recorded but not finished, which is finished when the backend is back;
FORGET_UNFINISHED: tuple[type[Exception], ...] = (ForgetUnfinished,)
# a fact or a search refused, or a search that failed: its own words are the answer.
FACT_REFUSED: tuple[type[Exception], ...] = (FactsFull, ValueError)
SEARCH_REFUSED: tuple[type[Exception], ...] = (ValueError, SearchFailed, BackendUnavailable)
FORGET_UNFINISHED_REPLY = ("I could not finish forgetting you: part of my memory is unreachable right now. It is "
                           "recorded and will be finished when it is back; you can also send /forget_me again later.")


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
    from graph.runner import ModelUnavailable

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
    from graph.runner import ModelUnavailable

    if isinstance(error, ModelUnavailable):
        return (f"the model failed: {error_line(failed_for(error))}; the message is kept as turn {error.kept_as}: "
                "no need to send it again")
    return f"the turn failed: {error_line(error)}"


def failed_for(error: BaseException) -> BaseException:
    """What really failed: the model's error for a message kept unanswered, else the error itself."""
    from graph.runner import ModelUnavailable

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
    if says_what_to_do(error):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def says_what_to_do(error: BaseException) -> bool:
    """Whether an error says what went wrong, and what to do, in its own words (shown as it is): a
    model not configured, a turn in conflict, memory's own, or a refusal of what was asked (a
    ValueError or a LookupError: a bad argument, nothing archived yet)."""
    from nodes.services import ModelNotConfigured

    return isinstance(error, (ModelNotConfigured, TurnConflict, BackendUnavailable, FactsFull, SearchFailed,
                              ValueError, LookupError))
