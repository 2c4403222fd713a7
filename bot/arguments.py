"""Argument types shared by the `goat` subcommands."""

from __future__ import annotations

import argparse
import sys


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= sys.maxsize:  # a count the process can hold (a deque's length, a slice)
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r:.40}")
    return value


def port_number(text: str) -> int:
    """A TCP port to listen on: 1-65535."""
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number (1-65535), got {text!r:.40}")
    return value
