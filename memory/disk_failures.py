"""What a store's write failing on the data folder's disk tells the user: a read-only
filesystem, or a full disk (the data folder's, or a Redis server's own), with what to do."""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

from memory.credentials import without_credentials
from memory.errors import BackendUnavailable
from memory.settings import MemorySettings

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
