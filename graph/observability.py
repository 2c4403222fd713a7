"""The per-turn observation: one JSON line per turn, and what `goat stats` makes of them.

Each finished turn becomes one line, logged to the ``goat.turns`` logger and appended to
``<data_dir>/logs/turns.jsonl`` (rotated at ``observability.log_max_bytes``, one previous
file kept, so it stays bounded). An in-process aggregator keeps a window of per-node
latencies and logs their percentiles every ``observability.report_every`` turns.

Message and reply text appear only with ``observability.log_content`` on. Secrets never
appear: the configured API key and bot token, and credentials inside URLs, are masked in
every string of the line (error texts of degraded backends included).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from memory.errors import MASK, url_secrets, without_credentials
from memory.settings import Settings

TURNS_LOGGER = logging.getLogger("goat.turns")
log = logging.getLogger(__name__)

TOTAL = "total"  # the turn's wall time, reported beside the nodes
LAYERS = ("l0_l1", "l2", "l3")


def turns_log_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / "logs" / "turns.jsonl"


# ---- the line ------------------------------------------------------------------------


class Redactor:
    """Masks secret values and URL credentials (``memory.errors.without_credentials``: userinfo
    passwords, secret-named query parameters) in every string value of a JSON-able value.

    Values shorter than ``MIN_SECRET_CHARS`` are left alone: no real key is that short, and
    masking a placeholder such as ``k`` would shred every word that contains it."""

    MIN_SECRET_CHARS = 8

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= self.MIN_SECRET_CHARS}, key=len, reverse=True)

    @classmethod
    def for_settings(cls, settings: Settings) -> "Redactor":
        keys = (settings.llm.api_key, settings.telegram.token, settings.telegram.webhook_secret, settings.mcp.token,
                settings.letta.token, *settings.server.tokens.values())
        # Plain strings too: a settings copy made without validation (model_copy) keeps them so.
        secrets = [key.get_secret_value() if isinstance(key, SecretStr) else str(key) for key in keys if key]
        # The passwords and secret parameters inside the configured URLs, should one be echoed bare.
        urls = (settings.redis.url, settings.chroma.url, settings.letta.url, settings.llm.base_url,
                settings.telegram.api_url)
        return cls(secrets + [secret for url in urls for secret in url_secrets(url)])

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, MASK)
            return without_credentials(value)
        if isinstance(value, Mapping):
            return {k: self(v) for k, v in value.items()}  # the keys are field and node names
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value


class RedactingFilter(logging.Filter):
    """A log handler's filter that masks secrets and URL credentials in every record it emits,
    whichever library wrote it (an exception's text may hold a URL with its password)."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self._redact(record.getMessage()), None
        return True


def observation(state: Mapping[str, Any], wall_ms: float, chat_wait_ms: float, *, log_content: bool) -> dict[str, Any]:
    """The line for one finished turn, from its final state (before redaction). ``wall_ms`` runs
    from the turn's arrival, ``chat_wait_ms`` of it waiting for the chat's earlier turns (or a
    lease left by a dead worker)."""
    prefetch = state.get("prefetch") or {}
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
        "aits": {k: (state.get("aits") or {}).get(k) for k in ("confidence", "complexity", "budget")},
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
            "keys": len(prefetch.get("keys") or []),  # how many: the keys themselves are message text
            "range": prefetch.get("range"),
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


# ---- percentiles -------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was really observed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def latency_summary(samples: Mapping[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    """{node: {p50, p95, max, n}} for each node with samples, in the given order."""
    return {
        node: {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95), "max": max(values), "n": len(values)}
        for node, values in samples.items()
        if values
    }


def latency_samples(lines: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Per node (in order of first appearance), then the turns' wall time under ``total``."""
    samples: dict[str, list[float]] = {}
    totals: list[float] = []
    for line in lines:
        for node, ms in (line.get("latency_ms") or {}).items():
            samples.setdefault(node, []).append(ms)
        if line.get("wall_ms") is not None:
            totals.append(line["wall_ms"])
    return {**samples, TOTAL: totals}


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

    def record(self, state: Mapping[str, Any], wall_ms: float, chat_wait_ms: float = 0.0) -> dict[str, Any]:
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


# ---- `goat stats` --------------------------------------------------------------------------


def summarize(lines: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What `goat stats` prints, from turn lines (oldest first)."""
    hits = sum(1 for line in lines if (line.get("cache") or {}).get("hit") is True)
    misses = sum(1 for line in lines if (line.get("cache") or {}).get("hit") is False)
    prefetch = [line.get("prefetch") or {} for line in lines]
    tokens = [line.get("tokens") or {} for line in lines]

    def mechanisms(field: str) -> dict[str, int]:
        """Turns per mechanism named in a list field (or, for ``failed``, a dict's keys)."""
        return dict(Counter(name for outcome in prefetch for name in outcome.get(field) or []))

    def counted(field: str) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for outcome in prefetch:
            counts.update(outcome.get(field) or {})
        return dict(counts)

    def p50(values: list[float]) -> float | None:
        return percentile(values, 0.5) if values else None

    return {
        "turns": len(lines),
        "from": lines[0].get("timestamp") if lines else None,
        "to": lines[-1].get("timestamp") if lines else None,
        "latency_ms": latency_summary(latency_samples(lines)),
        "cache": {"hits": hits, "misses": misses, "hit_rate": hits / (hits + misses) if hits + misses else None},
        "prefetch": {
            "fired": mechanisms("fired"),
            "succeeded": mechanisms("succeeded"),
            "timed_out": mechanisms("timed_out"),
            "failed": mechanisms("failed"),
            "found": counted("found"),
            "injected_by_mechanism": counted("injected_by_mechanism"),
            "per_turn_p50": {
                field: p50([o[field] for o in prefetch if isinstance(o.get(field), int)])
                for field in ("filtered", "injected")
            },
        },
        "degraded": dict(Counter(node for line in lines for node in line.get("degraded") or {})),
        "tokens_p50": {layer: p50([t[layer] for t in tokens if isinstance(t.get(layer), int)]) for layer in LAYERS},
    }


def render_stats(summary: Mapping[str, Any], source: Path | str) -> str:
    """The human form of `goat stats`; ``source`` names where the turns were read (a path, or a
    name for readers who must not see the server's paths)."""
    if not summary["turns"]:
        return f"no turns recorded yet in {source} — talk to GOAT (`goat chat` or the bot) first"

    def counts(values: Mapping[str, int]) -> str:
        return " · ".join(f"{k} {v}" for k, v in values.items()) or "none"

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    lines = [
        f"last {summary['turns']} turn(s), {summary['from']} … {summary['to']} ({source})",
        f"  {'latency ms':<16}{'p50':>10}{'p95':>10}{'max':>10}",
    ]
    for node, stats in summary["latency_ms"].items():
        lines.append(f"  {node:<16}{stats['p50']:>10.1f}{stats['p95']:>10.1f}{stats['max']:>10.1f}")
    cache, prefetch, tokens = summary["cache"], summary["prefetch"], summary["tokens_p50"]
    rate = "-" if cache["hit_rate"] is None else f"{cache['hit_rate']:.0%}"
    per_turn = prefetch["per_turn_p50"]
    lines += [
        f"  cache: {cache['hits']} hit(s), {cache['misses']} miss(es), hit rate {rate}",
        f"  prefetch fired: {counts(prefetch['fired'])}",
        f"  prefetch succeeded: {counts(prefetch['succeeded'])}; timed out: {counts(prefetch['timed_out'])};"
        f" failed: {counts(prefetch['failed'])}",
        f"  results found: {counts(prefetch['found'])}; injected: {counts(prefetch['injected_by_mechanism'])}",
        f"  per turn p50: kept by the gap filter {number(per_turn['filtered'])},"
        f" injected {number(per_turn['injected'])}",
        f"  degraded: {counts(summary['degraded'])}",
        f"  tokens p50: L0+L1 {number(tokens['l0_l1'])} · L2 {number(tokens['l2'])} · L3 {number(tokens['l3'])}",
    ]
    return "\n".join(lines)
