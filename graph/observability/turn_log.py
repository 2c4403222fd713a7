"""The per-turn observation: one JSON line per turn, logged and kept in a bounded file.

Each finished turn becomes one line, logged to the ``goat.turns`` logger and appended to
``<data_dir>/logs/turns.jsonl`` (rotated at ``observability.log_max_bytes``, one previous
file kept, so it stays bounded). An in-process aggregator keeps a window of per-node
latencies and logs their percentiles every ``observability.report_every`` turns.

Message and reply text appear only with ``observability.log_content`` on. Secrets never
appear: the configured API key and bot token, and credentials inside URLs, are masked in
every string of the line (error texts of degraded backends included; ``graph.observability.redaction``).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter, deque
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from graph.observability.redaction import Redactor
from graph.observability.stats import LAYERS, latency_samples, latency_summary
from graph.settings import Settings
from memory.turns import Assessment, notes_reported
from nodes.state import TurnState

TURNS_LOGGER = logging.getLogger("goat.turns")
log = logging.getLogger(__name__)


def turns_log_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / "logs" / "turns.jsonl"


# ---- the line ------------------------------------------------------------------------


def observation(state: TurnState, wall_ms: float, chat_wait_ms: float, *, log_content: bool) -> dict[str, Any]:
    """The line for one finished turn, from its final state (before redaction). ``wall_ms`` runs
    from the turn's arrival, ``chat_wait_ms`` of it waiting for the chat's earlier turns (or a
    lease left by a dead worker)."""
    prefetch: Mapping[str, Any] = state.get("prefetch") or {}  # a RecallOutcome, when the turn ran it
    cache = prefetch.get("cache") or {}
    injected = state.get("l3") or []
    line: dict[str, Any] = {
        "event": "turn",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "chat_id": state.get("chat_id"),
        "user_id": state.get("user_id"),
        "turn": state.get("turn"),
        "wall_ms": round(wall_ms, 3),
        "chat_wait_ms": round(chat_wait_ms, 3),
        "latency_ms": dict(state.get("latency_ms") or {}),
        "aits": {k: (state.get("aits") or {}).get(k) for k in Assessment.__annotations__},
        "split": {k: (state.get("split") or {}).get(k) for k in LAYERS},
        "tokens": {k: (state.get("tokens") or {}).get(k) for k in LAYERS},
        "cache": {"hit": cache.get("hit"), "key": cache.get("key")},  # hit None: no lookup this turn
        "prefetch": {
            "fired": list(prefetch.get("fired") or []),
            "succeeded": list(prefetch.get("succeeded") or []),
            "timed_out": list(prefetch.get("timed_out") or []),
            "failed": dict(prefetch.get("failed") or {}),
            "found": dict(prefetch.get("found") or {}),  # per mechanism, before the gap filter
            "filtered": len(state.get("l3_candidates") or []),  # kept by the gap filter, merged
            "injected": len(injected),  # what fitted the L3 share of the prompt
            "injected_by_mechanism": dict(Counter(r.get("mechanism") for r in injected)),
            # Which entries, best first (ids and numbers, never their text): what a turn was given
            # can be shown later from the archive (goat web), as long as the archive holds them.
            "injected_entries": [{"id": r.get("id"), "mechanism": r.get("mechanism"),
                                  "distance": round(float(r.get("distance") or 0.0), 4),
                                  "score": None if r.get("blended_score") is None else round(r["blended_score"], 4)}
                                 for r in injected],
            **notes_reported(prefetch, for_the_log=True),  # what each mechanism read, never the message's words
            "waited_ms": prefetch.get("waited_ms"),
            "deadline_ms": prefetch.get("deadline_ms"),
        },
        "degraded": {node: problem for node, problem in (state.get("degraded") or {}).items() if problem},
    }
    if log_content:
        line["message"] = state.get("message")
        line["reply"] = state.get("reply")
    return line


# ---- the file --------------------------------------------------------------------------


class TurnLog:
    """A JSON Lines file rotated at ``max_bytes`` into ``<name>.1.jsonl`` (one previous file kept)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.rotated = path.with_suffix(".1" + path.suffix)
        self.max_bytes = max_bytes

    def append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.path.stat().st_size >= self.max_bytes:
                os.replace(self.path, self.rotated)
        except FileNotFoundError:  # a first line, or another process rotated it just now
            pass
        # One write on an O_APPEND descriptor: lines of processes sharing the file do not interleave.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
        finally:
            os.close(fd)

    def drop_user(self, user_id: str) -> int:
        """Rewrite the files without the user's lines (forgetting a person); returns how many
        went. A line another process appends during the rewrite may be lost with them."""
        dropped = 0
        for path in (self.rotated, self.path):
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
            except FileNotFoundError:
                continue
            kept = [line for line in lines if not _is_of_user(line, user_id)]
            dropped += len(lines) - len(kept)
            spare = path.with_suffix(path.suffix + ".tmp")
            spare.write_text("".join(kept), encoding="utf-8")
            os.replace(spare, path)
        return dropped

    def tail(self, count: int, events: tuple[str, ...] = ("turn",)) -> list[dict[str, Any]]:
        """The last ``count`` lines of these events (finished turns by default), oldest first
        (unreadable lines are passed over)."""
        raw: deque[str] = deque(maxlen=count)
        for path in (self.rotated, self.path):
            try:
                with path.open(encoding="utf-8", errors="replace") as file:
                    raw.extend(line for line in file if line.strip())
            except FileNotFoundError:
                continue
        lines = []
        for text in raw:
            try:
                line = json.loads(text)
            except json.JSONDecodeError:  # e.g. cut short by a crash mid-write
                continue
            if isinstance(line, dict) and line.get("event") in events:
                lines.append(line)
        return lines


def _is_of_user(line: str, user_id: str) -> bool:
    try:
        return json.loads(line).get("user_id") == user_id
    except (json.JSONDecodeError, AttributeError):
        return False


# ---- the latency report ------------------------------------------------------------------


class LatencyAggregator:
    """A bounded window of latencies per node; its percentiles are logged every ``report_every`` turns."""

    def __init__(self, window: int, report_every: int) -> None:
        self._window = window
        self._report_every = report_every
        self._samples: dict[str, deque[float]] = {}
        self.turns = 0

    def add(self, line: Mapping[str, Any]) -> None:
        for node, values in latency_samples([line]).items():
            self._samples.setdefault(node, deque(maxlen=self._window)).extend(values)
        self.turns += 1
        if self.turns % self._report_every == 0:
            report = {"event": "latency_percentiles", "turns": self.turns, "latency_ms": self.summary()}
            TURNS_LOGGER.info(json.dumps(report))

    def summary(self) -> dict[str, dict[str, float]]:
        return latency_summary(self._samples)


# ---- the observer ------------------------------------------------------------------------


class TurnObserver:
    """Records each finished turn: ``observer.record(final_state, wall_ms)``."""

    def __init__(self, settings: Settings) -> None:
        config = settings.observability
        self._log_content = config.log_content
        self._redact = Redactor.for_settings(settings)
        self.log = TurnLog(turns_log_path(settings), config.log_max_bytes)
        self.aggregator = LatencyAggregator(config.latency_window, config.report_every)
        self._file_failed = False

    def record(self, state: TurnState, wall_ms: float, chat_wait_ms: float = 0.0) -> dict[str, Any]:
        """Log the turn's line and append it to the turns file; returns the line. Never raises
        for the file: observing a turn must not fail it."""
        line = self._write(observation(state, wall_ms, chat_wait_ms, log_content=self._log_content))
        self.aggregator.add(line)
        return line

    def record_failure(self, turn: Mapping[str, Any], error: BaseException, wall_ms: float,
                       chat_wait_ms: float = 0.0) -> dict[str, Any]:
        """Log a turn that raised (its user got an error): which chat, after how long, what failed."""
        return self._write({
            "event": "turn_failed",
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "chat_id": turn.get("chat_id"),
            "user_id": turn.get("user_id"),
            "wall_ms": round(wall_ms, 3),
            "chat_wait_ms": round(chat_wait_ms, 3),
            "error": f"{type(error).__name__}: {error}",
        })

    def _write(self, line: dict[str, Any]) -> dict[str, Any]:
        line = self._redact(line)
        text = json.dumps(line, ensure_ascii=False, default=str)  # never fail a turn over a stray type
        TURNS_LOGGER.info(text)  # the user already saw a failed turn's error: no second report on stderr
        try:
            self.log.append(text)
        except OSError as exc:
            if not self._file_failed:  # once: a full disk would otherwise warn every turn
                log.warning("cannot write the turn log %s: %s", self.log.path, exc)
            self._file_failed = True
        return line
