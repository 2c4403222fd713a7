"""Run a command and write its peak resident memory, in kB, to a file: ``python peak_memory.py
OUT COMMAND...``, exiting as the command exits.

The command is forked from this small process, not from the caller: the kernel keeps a process's
peak across exec from the moment it was forked, so a child of a large test session would report
the session's size, not its own."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> int:
    out, *command = sys.argv[1:]
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    Path(out).write_text(str(usage.ru_maxrss), encoding="utf-8")
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
