"""Merge the prefetch mechanisms' recalls into one scored, best-first list."""

from __future__ import annotations

from collections.abc import Iterable

# Which mechanism an entry found by several is reported under (most specific first).
MECHANISM_PRIORITY = ("specific_key", "temporal", "thematic")
_SECONDS_PER_DAY = 86_400.0


def merge_and_score(
    lists: Iterable[list[dict]],
    now: float,
    *,
    weight_similarity: float = 0.6,
    weight_recency: float = 0.3,
    weight_popularity: float = 0.1,
    recency_window_days: float = 30.0,
    popularity_norm: float = 10.0,
    max_results: int = 15,
) -> list[dict]:
    """De-duplicate by id, score, sort best-first, keep ``max_results``.

    An entry found by several mechanisms keeps the copy with the smallest distance;
    ``mechanisms`` lists every mechanism that found it (priority order, unknown ones
    last) and ``mechanism`` is the first of them. Each returned dict is a copy with
    ``blended_score`` added:

        ws·1/(1+distance) + wr·recency + wp·min(access_count/norm, 1)
        recency = max(0, 1 − age/window), age = now − timestamp (an entry stamped in
        the future counts as age 0, so recency never exceeds 1)

    Ties are broken by smaller distance, then newer timestamp, then id, so the order
    is deterministic. ``now`` and timestamps are unix seconds.
    """
    best: dict[str, dict] = {}
    found_by: dict[str, list[str]] = {}
    for recalls in lists:
        for recall in recalls:
            entry_id = recall["id"]
            mechanisms = found_by.setdefault(entry_id, [])
            if recall["mechanism"] not in mechanisms:
                mechanisms.append(recall["mechanism"])
            if entry_id not in best or recall["distance"] < best[entry_id]["distance"]:
                best[entry_id] = recall
    window = recency_window_days * _SECONDS_PER_DAY
    scored = []
    for entry_id, recall in best.items():
        mechanisms = sorted(found_by[entry_id], key=_priority)
        metadata = dict(recall.get("metadata") or {})
        similarity = 1.0 / (1.0 + recall["distance"])
        age = max(0.0, now - recall["timestamp"])
        recency = max(0.0, 1.0 - age / window)
        popularity = min(float(metadata.get("access_count") or 0) / popularity_norm, 1.0)
        scored.append(
            {
                **recall,
                "metadata": metadata,
                "mechanism": mechanisms[0],
                "mechanisms": mechanisms,
                "blended_score": weight_similarity * similarity
                + weight_recency * recency
                + weight_popularity * popularity,
            }
        )
    scored.sort(key=lambda r: (-r["blended_score"], r["distance"], -r["timestamp"], r["id"]))
    return scored[:max_results]


def _priority(mechanism: str) -> int:
    return MECHANISM_PRIORITY.index(mechanism) if mechanism in MECHANISM_PRIORITY else len(MECHANISM_PRIORITY)
