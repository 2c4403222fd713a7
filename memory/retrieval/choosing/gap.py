"""Which recalls stand out: against the chat's background, or (without one) by a gap in the list.

Both tests are scale-invariant: multiplying every distance (and the background) by a constant
changes nothing.

- ``background_filter``: an entry stands out when it is closer to the query than a share
  (``ratio``) of the query's mean distance to the chat's other entries (the background, its
  own distance taken out: against a mean that counts it, a chat's only entry, or one of a
  few, could never stand out). It judges
  each entry on its own, so a plateau of several relevant entries (a multi-part question)
  passes as well as a lone outlier, and a message about nothing in the chat (a greeting, an
  unrelated question) finds no entry far enough below the background.
- ``gap_filter``: the spec's original test, for lists without a background (the chat's
  centroid is not indexed yet): the head before the largest gap, if that gap dominates.
"""

from __future__ import annotations

from collections.abc import Sequence

from memory.retrieval.mechanisms import is_exact_hit
from memory.turns import Hit


def gap_ratio(distances: Sequence[float]) -> float | None:
    """Largest gap between consecutive sorted distances over the mean gap.

    None when there are fewer than 3 distances (under 2 gaps there is no "largest"
    to compare) or when all distances are equal (no gap at all: no structure).
    Multiplying every distance by a positive constant leaves the ratio unchanged.
    """
    if len(distances) < 3:
        return None
    ordered = sorted(distances)
    gaps = [b - a for a, b in zip(ordered, ordered[1:])]
    mean_gap = sum(gaps) / len(gaps)
    return max(gaps) / mean_gap if mean_gap > 0 else None


def gap_filter(recalls: list[Hit], significance: float, ceiling: float, min_keep: int = 0) -> list[Hit]:
    """The recalls worth injecting from one result list, closest first.

    - Exact hits (distance 0 from the specific-key mechanism) always pass and take
      no part in the gap computation (their 0 would fake a gap).
    - 3 or more other results: if ``gap_ratio ≥ significance`` keep those before the
      largest gap (the first one, if several are equally large), else keep none —
      a flat list, including all-equal distances, has no cluster worth injecting.
    - Fewer than 3: keep those with ``distance ≤ ceiling`` (1.5 = nearly orthogonal
      in squared L2 on unit vectors, 0.75 in cosine distance).

    - ``min_keep``: at least this many of the closest are kept whatever the test says —
      for a list that is a selection in itself, such as the entries of a time range the
      user named ("what did we discuss yesterday?" has no topic to stand out).

    Input order does not matter; the input is not mutated.

    Args:
        recalls: one mechanism's hits, each with its ``distance``.
        significance: ``retrieval.gap_significance``.
        ceiling: ``retrieval.small_result_ceiling``.
        min_keep: the closest kept at least.

    Returns:
        The exact hits, then the kept others, closest first.
    """
    ordered = sorted(recalls, key=lambda r: r["distance"])
    exact = [r for r in ordered if is_exact_hit(r["distance"], r.get("mechanism"))]
    ranked = [r for r in ordered if not is_exact_hit(r["distance"], r.get("mechanism"))]
    return exact + ranked[: max(min_keep, _kept_count(ranked, significance, ceiling))]


def background_filter(
    recalls: list[Hit], background: float, ratio: float, min_keep: int = 0, passages: int | None = None
) -> list[Hit]:
    """The recalls with ``distance ≤ ratio · others_mean``, closest first.

    ``background`` is the query's mean distance to the chat's ``passages`` entries (same units
    as the distances; ``passages`` None: as many as make the entry's own share negligible).
    Exact hits always pass; ``min_keep`` closest are kept whatever the test says (as in
    :func:`gap_filter`). The input is not mutated.
    """
    ordered = sorted(recalls, key=lambda r: r["distance"])
    return [r for i, r in enumerate(ordered)
            if is_exact_hit(r["distance"], r.get("mechanism")) or i < min_keep
            or r["distance"] <= ratio * others_mean(background, passages, r["distance"])]


def others_mean(background: float, passages: int | None, distance: float) -> float:
    """The query's mean distance to the chat's other entries than one at ``distance``, from the
    mean over all ``passages`` of them (``background``). An entry of another encoder's space than
    the background's is not in that mean: for it this is a slightly looser bound, which only a
    chat of a few entries notices."""
    if passages is None or passages < 2:
        return background
    return (passages * background - distance) / (passages - 1)


def _kept_count(ranked: list[Hit], significance: float, ceiling: float) -> int:
    """How many of the closest non-exact results the gap test keeps (they are a prefix)."""
    if len(ranked) < 3:
        return sum(r["distance"] <= ceiling for r in ranked)
    distances = [r["distance"] for r in ranked]
    ratio = gap_ratio(distances)
    if ratio is None or ratio < significance:
        return 0
    gaps = [b - a for a, b in zip(distances, distances[1:])]
    return gaps.index(max(gaps)) + 1
