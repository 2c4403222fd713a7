"""Errors the memory layer raises to its callers (light to import: the CLI catches them), what
a backend's write failing on a full disk tells the user, and the one redaction of URLs every
printed, logged or returned text goes through."""

from __future__ import annotations

import errno
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

from memory.settings import MemorySettings, encoder_of

MASK = "[redacted]"

# A URL inside free text: a scheme, "://", then everything up to a space, a quote or a bracket
# that cannot be part of it (so a URL inside a JSON string or a repr stops at its quote), and
# not on the punctuation of the sentence around it.
_URL = re.compile(r"""[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>`]*[^\s"'<>`.,;:!?)]""")
# A query (or fragment) parameter whose name says its value is a secret: password, passwd,
# pwd, pass, key, api-key, api_key, apikey, token, access_token, auth, secret, client_secret,
# signature, sig, credential(s)… Over-masking a harmless one (``ssl_keyfile``) is the safe side.
_SECRET_NAME = re.compile(r"pass|pwd|key|token|secret|auth|sig|credential", re.IGNORECASE)
_PARAMETER = re.compile(r"(?:^|(?<=&))([^&=]+)=([^&]*)")
_PORT = re.compile(r"\d+")


def _userinfo_end(rest: str) -> int:
    """In ``rest`` (a URL after its ``://``), the index of the ``@`` that ends the userinfo
    holding a password, or -1: there is none (or a user name alone, which is no secret)."""
    authority_end = next((i for i, c in enumerate(rest) if c in "/?#"), len(rest))
    at = rest.rfind("@", 0, authority_end)  # the last one: a password may hold "@" itself
    if at >= 0:
        return at if ":" in rest[:at] else -1
    # A password holding "/", "?" or "#" (unencoded, as users do write it: "redis://:pa/ss@host/0").
    # The text up to the last "@" is userinfo when its user name holds none of "/?#" and what
    # follows its ":" is no port: "https://host:443/@someone" is a path, not userinfo.
    at = rest.rfind("@")
    user, colon, password = rest[:max(at, 0)].partition(":")
    if at < 0 or not colon or any(c in user for c in "/?#") or (user and _PORT.fullmatch(password.partition("/")[0])):
        return -1
    return at


def _mask_parameters(part: str) -> str:
    """``part`` (a query or a fragment, without its ``?``/``#``) with the values of its
    secret-named parameters masked."""
    def mask(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        return f"{name}={MASK}" if value and _SECRET_NAME.search(unquote(name)) else match.group(0)

    return _PARAMETER.sub(mask, part)


def _masked_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    at = _userinfo_end(rest)
    if at >= 0:
        rest = MASK + rest[at:]
        authority_end = len(MASK) + 1
    else:
        authority_end = 0
    query = next((i for i in range(authority_end, len(rest)) if rest[i] in "?#"), len(rest))
    head, tail = rest[:query], rest[query:]
    fragment = tail.find("#")
    query_part, fragment_part = (tail, "") if fragment < 0 else (tail[:fragment], tail[fragment:])
    if query_part:
        query_part = "?" + _mask_parameters(query_part[1:])
    if fragment_part:  # OAuth-style fragments carry tokens too: "#access_token=…"
        fragment_part = "#" + _mask_parameters(fragment_part[1:])
    return f"{scheme}://{head}{query_part}{fragment_part}"


def without_credentials(text: str) -> str:
    """``text`` with the credentials of every URL in it masked: the userinfo holding a password
    (``scheme://user:password@host``, ``scheme://:password@host``, a password holding ``@``
    or ``/`` included) and the values of secret-named query or fragment parameters
    (``?password=…``, ``?api-key=…``, ``&token=…``, ``#access_token=…``); the rest is kept."""
    return _URL.sub(lambda match: _masked_url(match.group(0)), text)


def url_secrets(url: str | None) -> list[str]:
    """The secret values a URL holds (its password, its secret-named parameters' values), as
    written and percent-decoded: a library may echo one bare, outside the URL."""
    if not url or "://" not in url:
        return []
    rest = url.partition("://")[2]
    found: list[str] = []
    at = _userinfo_end(rest)
    if at >= 0:
        found.append(rest[:at].partition(":")[2])
        rest = rest[at + 1:]
    query = next((i for i, c in enumerate(rest) if c in "?#"), -1)
    if query >= 0:
        for part in rest[query + 1:].split("#"):
            found += [value for name, value in _PARAMETER.findall(part) if value and _SECRET_NAME.search(unquote(name))]
    return [secret for value in found for secret in {value, unquote(value)}]


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


# With less room than this left on the data folder's disk, a failed write of a store kept there
# is taken as the disk's being full: Chroma's errors do not say why its writes failed.
FULL_DISK_BYTES = 8 * 2**20
# The packages of the stores that write in the data folder (embedded Redis and Chroma).
_STORAGE_PACKAGES = ("redis", "chromadb", "sqlite3")
# How a store says it found no room: the OS's ENOSPC as Redis words it, SQLite's SQLITE_FULL.
_NO_SPACE_WORDS = ("No space left on device", "database or disk is full")
# How a store says its files cannot be written at all: the OS's EROFS, SQLite's SQLITE_READONLY.
_READ_ONLY_WORDS = ("Read-only file system", "readonly database")


def disk_unwritable(exc: BaseException, settings: MemorySettings) -> str | None:
    """What to tell the user when ``exc`` is a store's write failing on a disk that is read-only
    (:func:`read_only_disk`) or full (:func:`disk_full`); None when it is neither.

    Args:
        exc: what a command failed with (the exceptions it came from are read too).
        settings: where the stores keep their data.

    Returns:
        One line, or None.
    """
    return read_only_disk(exc, settings) or disk_full(exc, settings)


def read_only_disk(exc: BaseException, settings: MemorySettings) -> str | None:
    """What to tell the user when ``exc`` is a store's write refused by a read-only filesystem:
    which data folder, and what to do, with the store's own words; None when it is not that.
    Checked before :func:`disk_full`: a small read-only disk has little room free, too.

    Args:
        exc: what a command failed with (the exceptions it came from are read too).
        settings: where the stores keep their data.

    Returns:
        One line, or None.
    """
    chain = list(_causes(exc))
    if settings.redis.url and any(refuses_writes(e) for e in chain):
        return None  # a Redis server's own disk, not the data folder's: :func:`disk_full` names it
    if not any(isinstance(e, OSError) and e.errno == errno.EROFS or any(words in str(e) for words in _READ_ONLY_WORDS)
               for e in chain):
        return None
    data_dir = Path(settings.data_dir).expanduser().resolve()
    return (f"the data folder {data_dir} is on a read-only filesystem; make it writable (or set GOAT_DATA_DIR to a "
            f"folder that is), then run the command again ({_said(exc)})")


def disk_full(exc: BaseException, settings: MemorySettings) -> str | None:
    """What to tell the user when ``exc`` is a store's write failing for want of disk space:
    which disk is full (the data folder's, or a Redis server's own) and what to do, with the
    store's own words; None when it is not that.

    Args:
        exc: what a command failed with (the exceptions it came from are read too).
        settings: where the stores keep their data.

    Returns:
        One line, or None.
    """
    chain, said = list(_causes(exc)), _said(exc)
    if settings.redis.url and any(refuses_writes(e) for e in chain):  # the server's disk, not the data folder's
        return (f"the Redis server at {without_credentials(settings.redis.url)} cannot write to its disk (full, "
                f"most often: see its log); free space there, then run the command again ({said})")
    data_dir = Path(settings.data_dir).expanduser().resolve()
    free = free_bytes(data_dir)
    no_space = any(isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)
                   or any(words in str(e) for words in _NO_SPACE_WORDS) for e in chain)
    embedded = settings.redis.url is None or settings.chroma.url is None
    from_storage = any(isinstance(e, (OSError, BackendUnavailable))
                       or type(e).__module__.partition(".")[0] in _STORAGE_PACKAGES for e in chain)
    if no_space or (embedded and from_storage and free < FULL_DISK_BYTES):
        return (f"the disk holding the data folder {data_dir} is full ({readable_size(free)} free); free space "
                f"there, then run the command again ({said})")
    return None


def _said(exc: BaseException) -> str:
    """What a store said of its failed write, on one line, without credentials."""
    said = " ".join((str(exc) if isinstance(exc, BackendUnavailable) else f"{type(exc).__name__}: {exc}").split())
    return without_credentials(said)


def free_bytes(folder: Path) -> int:
    """The room left on the disk holding ``folder`` (or its nearest existing parent)."""
    for existing in (folder, *folder.parents):
        if existing.exists():
            return shutil.disk_usage(existing).free
    return 0


def readable_size(size: float) -> str:
    """``size`` bytes as a person reads it: 0 B, 512 kB, 3.4 MB, 20 GB."""
    units = ["B", "kB", "MB", "GB", "TB"]
    while size >= 1000 and len(units) > 1:
        size /= 1000
        units.pop(0)
    return f"{size:.3g} {units[0]}" if size < 1000 else f"{size:.0f} {units[0]}"


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or while handling, once each."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def refuses_writes(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis's refusal of writes it could not keep: MISCONF (a failed write to
    its files, or a failed snapshot)."""
    return type(exc).__module__.partition(".")[0] == "redis" and str(exc).startswith("MISCONF")
