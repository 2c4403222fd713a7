"""Errors the memory layer raises to its callers (light to import: the CLI catches them); their
messages name a backend's URL without its credentials."""

from __future__ import annotations

from memory.credentials import without_credentials
from memory.settings import encoder_of


class BackendUnavailable(RuntimeError):
    """A backend could not be reached; the message says which and what to do. It names the
    backend's URL without its credentials: the message is printed and logged as it is."""

    def __init__(self, backend: str, detail: str, fix: str = "") -> None:
        self.backend, self.detail, self.fix = backend, without_credentials(detail), without_credentials(fix)
        super().__init__(without_credentials(f"{backend} is unavailable: {detail}" + (f" — {fix}" if fix else "")))


class FactsFull(ValueError):
    """A fact was refused: the facts block, shown in every prompt, would pass its token limit."""


class ChatHeldByOthers(ValueError):
    """An import refused: its chat holds another person's turns (the rule:
    ``memory/stores/chat_owners.py``). Nothing of the chat was written."""

    def __init__(self, chat_id: str) -> None:
        super().__init__(f"chat {chat_id!r} holds another person's turns")
        self.chat_id = chat_id


class SearchFailed(RuntimeError):
    """A search could not look where it had to (a backend failed or missed its deadline)."""


class ArchiveReadOnly(NotImplementedError):
    """A write through the archive's LangChain vector store (``MemoryScope.vector_store``),
    refused: L3 is written through GOAT's door alone, which keeps the word index, L2 and what
    forgetting erases in step with it. A NotImplementedError, as LangChain's own stores raise for
    a write they do not do."""

    def __init__(self) -> None:
        super().__init__("GOAT's archive is read-only through LangChain: it is written through GOAT, which keeps "
                         "its word index, L2 and forgetting in step — add turns with `goat import` (or "
                         "Memory.archive, MemoryScope.store), delete an entry with Memory.entries.delete (MCP's "
                         "delete_memory, the Store's delete) and a person's data with `goat forget-user`")


class ForgetUnfinished(BackendUnavailable):
    """Forgetting a user stopped half-way on a backend failure. The forget is recorded, and
    running it again (``goat forget-user``, or the next start of the bot or ``goat chat``)
    finishes it: what is left of the user is found the same way."""

    def __init__(self, user_id: str, cause: BaseException) -> None:
        super().__init__(getattr(cause, "backend", "a backend"),
                         f"forgetting user {user_id} stopped half-way ({type(cause).__name__}: {cause})",
                         f"it is recorded: run `goat forget-user {user_id}` again once it is back "
                         "(goat bot and goat chat also finish it when they start)")


class EncoderMismatch(BackendUnavailable):
    """The archive's vectors were made by another encoder than this process's: searched with
    its vectors, the archive would answer nonsense, and written with them, it would mix two
    vector spaces. ``goat reembed`` re-embeds it (and finishes an interrupted re-embedding)."""

    def __init__(self, archive: str | None, configured: str, reembedding: str | None = None,
                 running: bool = False) -> None:
        model, configured_model = encoder_of(archive or ""), encoder_of(configured)
        if reembedding is not None:
            to = encoder_of(reembedding)
            super().__init__("L3", f"a re-embedding of the archive with {to} is unfinished",
                             "`goat reembed` is running it: wait for it to finish" if running else
                             f"run `goat reembed` with embeddings.model={to} to finish it")
        elif model == configured_model:
            super().__init__("L3", f"the archive's {model} vectors were made by an older version ({archive}; "
                             f"now {configured})", "run `goat reembed` to re-embed it")
        else:
            super().__init__("L3", f"the archive was embedded with {model}, this process is set to {configured_model}",
                             f"run `goat reembed` to re-embed it with {configured_model}, or set "
                             f"embeddings.model={model}")
