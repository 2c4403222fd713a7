"""Fuse the prefetch's ranked lists, choose what to inject, and score it best-first."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from memory.settings import Retrieval
from memory.retrieval.choosing.beside import turn_place
from memory.retrieval.choosing.gap import background_filter, gap_filter, others_mean
from memory.retrieval.choosing.latest import newest_first
from memory.retrieval.mechanisms import is_exact_hit, mechanism
from memory.turns import Hit, Verdict

_SECONDS_PER_DAY = 86_400.0


def choose_recalls(
    lists: Mapping[str, list[Hit]], background: float | None, now: float, retrieval: Retrieval, max_results: int,
    ceiling: float | None = None, passages: int | None = None, meaning_first: bool = False,
    latest_first: bool = False,
) -> list[Hit]:
    """What to inject from ranked lists (name -> hits, distances on the query's scale), scored
    and best first.

    Each list's relevant entries: with a background (the query's mean distance to the chat's
    ``passages`` entries, on the scale), those below ``relevance_ratio`` of the mean over the
    others (word hits: ``lexical_relevance_ratio``, ``long_lexical_relevance_ratio`` in a turn
    holding a message over ``whole_message_chars``); without one, the spec's gap test with
    ``ceiling`` (on the scale; None: ``small_result_ceiling``) for short lists (word hits:
    none, words alone cannot tell relevance). The lists' ranks are fused (:func:`fuse`); the relevant entries plus some
    context (:func:`with_context`) are scored by :func:`merge_and_score`. A message judged
    ``meaning_first`` (a statement about its speaker, or one asked in another language than
    English: recall's ``outcome["meaning_first"]``) has its hits by meaning stand out below
    ``meaning_first_relevance_ratio``, and the word list's ranks weigh
    ``meaning_first_lexical_weight`` in the fusion. A message asking for the newest of what was
    told (``latest_first``: :func:`~memory.retrieval.choosing.latest.asks_for_the_latest`) has the
    entries that stand out put newest first (:func:`~memory.retrieval.choosing.latest.newest_first`).
    """
    relevant = _relevant_ids(lists, background, retrieval, ceiling, passages, meaning_first)
    return _choose(lists, relevant, now, retrieval, max_results, meaning_first, latest_first)


def choose_and_explain(
    lists: Mapping[str, list[Hit]], background: float | None, now: float, retrieval: Retrieval, max_results: int,
    ceiling: float | None = None, passages: int | None = None, meaning_first: bool = False,
    latest_first: bool = False,
) -> tuple[list[Hit], list[Verdict]]:
    """What :func:`choose_recalls` chooses, and why each candidate was kept or dropped, from
    one judgement of each list's relevant entries.

    Args:
        lists, background, now, retrieval, max_results, ceiling, passages, meaning_first,
            latest_first: as :func:`choose_recalls` takes them.

    Returns:
        What to inject, scored and best first (as :func:`choose_recalls` returns it); and for
        each candidate of each ranked list, list by list, in rank order, without the entries'
        text (:class:`Verdict`).
    """
    relevant = _relevant_ids(lists, background, retrieval, ceiling, passages, meaning_first)
    chosen = _choose(lists, relevant, now, retrieval, max_results, meaning_first, latest_first)
    return chosen, _verdicts(lists, relevant, background, retrieval, chosen, passages, meaning_first)


def why_kept(verdicts: list[Verdict]) -> dict[str, str]:
    """Entry id -> why it was kept, by each list that kept it ("thematic: stands out: …"), from
    :func:`choose_and_explain`'s verdicts."""
    found: dict[str, list[str]] = {}
    for verdict in verdicts:
        if verdict["kept"]:
            found.setdefault(verdict["id"], []).append(f"{verdict['list']}: {verdict['why']}")
    return {entry_id: "; ".join(why) for entry_id, why in found.items()}


def _relevant_ids(
    lists: Mapping[str, list[Hit]], background: float | None, retrieval: Retrieval, ceiling: float | None,
    passages: int | None, meaning_first: bool,
) -> dict[str, set[str]]:
    """Per ranked list, the ids of its entries that stand out on their own."""
    return {name: {r["id"] for r in _relevant(name, hits, background, retrieval, ceiling, passages, meaning_first)}
            for name, hits in lists.items()}


def _choose(lists: Mapping[str, list[Hit]], relevant: Mapping[str, set[str]], now: float, retrieval: Retrieval,
            max_results: int, meaning_first: bool, latest_first: bool) -> list[Hit]:
    fused = fuse(
        [sorted(hits, key=lambda r: r["distance"]) if mechanism(name).by_distance else hits
         for name, hits in lists.items()],
        rrf_k=retrieval.rrf_k,
        beside_weight=retrieval.beside_weight,
        weights=[mechanism(name).weight(retrieval, meaning_first) for name in lists],
    )
    stands_out = set().union(*relevant.values())
    kept = with_context(stands_out, fused, retrieval.context_ratio)
    scored = merge_and_score(
        [[r for r in hits if r["id"] in kept] for hits in lists.values()],
        now,
        fused,
        weight_similarity=retrieval.weight_similarity,
        weight_recency=retrieval.weight_recency,
        weight_popularity=retrieval.weight_popularity,
        recency_window_days=retrieval.recency_window_days,
        popularity_norm=retrieval.popularity_norm,
        max_results=max_results,
    )
    chosen = scoring_near_the_best(scored, retrieval.min_score_share)
    return newest_first(chosen, stands_out) if latest_first else chosen


def scoring_near_the_best(scored: list[Hit], min_share: float) -> list[Hit]:
    """The scored entries (best first) whose ``blended_score`` is at least ``min_share`` of the
    best's. An entry scoring far below the best is rarely what the message asks about (on
    LoCoMo's tuning conversations, 3 of the 431 injected below 0.4 × the best were evidence),
    and each costs as many tokens as one that is.

    Args:
        scored: :func:`merge_and_score`'s entries, best first.
        min_share: ``retrieval.min_score_share``.

    Returns:
        The leading entries that score high enough, best first.
    """
    if not scored:
        return []
    floor = min_share * scored[0]["blended_score"]
    return [recall for recall in scored if recall["blended_score"] >= floor]


def _verdicts(lists: Mapping[str, list[Hit]], relevant: Mapping[str, set[str]], background: float | None,
              retrieval: Retrieval, chosen: list[Hit], passages: int | None, meaning_first: bool) -> list[Verdict]:
    chosen_ids = {recall["id"] for recall in chosen}
    stands_out = set().union(*relevant.values())
    verdicts: list[Verdict] = []
    for name, hits in lists.items():
        for hit in hits:
            entry_id, distance = hit["id"], hit["distance"]
            if entry_id in relevant[name]:
                why = _why_relevant(name, hit, background, retrieval, passages, meaning_first)
            elif entry_id in stands_out:
                why = "stands out in another list"
            elif entry_id in chosen_ids:
                why = "context: among the next best by fused rank beside what stands out"
            elif background is None:
                why = "not before a significant gap in its list (the chat has no background yet)"
            else:
                ratio = mechanism(name).ratio(retrieval, hit, meaning_first)
                why = (f"not relevant: distance {distance:.3f} > {ratio} × background "
                       f"{others_mean(background, passages, distance):.3f}")
            if entry_id in stands_out and entry_id not in chosen_ids:
                why += (f"; outranked: beyond the {len(chosen_ids)} kept (at most prefetch.max_results, each "
                        f"scoring at least {retrieval.min_score_share} × the best)")
            verdicts.append({"list": name, "id": entry_id, "distance": round(distance, 4),
                             "kept": entry_id in chosen_ids, "why": why})
    return verdicts


def _why_relevant(name: str, hit: Hit, background: float | None, retrieval: Retrieval,
                  passages: int | None, meaning_first: bool) -> str:
    distance = hit["distance"]
    if is_exact_hit(distance, name):
        return "exact: holds a key the message names"
    if background is None:
        return "head of its list, before a significant gap"
    others = others_mean(background, passages, distance)
    ratio = mechanism(name).ratio(retrieval, hit, meaning_first)
    if distance > ratio * others:
        return mechanism(name).closest_kept
    return f"stands out: distance {distance:.3f} ≤ {ratio} × background {others:.3f}"


def _relevant(name: str, hits: list[Hit], background: float | None, retrieval: Retrieval,
              ceiling: float | None, passages: int | None, meaning_first: bool) -> list[Hit]:
    """The entries of one ranked list that stand out on their own."""
    rules = mechanism(name)
    min_keep = rules.min_kept(retrieval)
    if background is None:
        return [] if not rules.gap_without_background else gap_filter(
            hits, retrieval.gap_significance, retrieval.small_result_ceiling if ceiling is None else ceiling,
            min_keep=min_keep)
    by_ratio: dict[float, list[Hit]] = {}
    for hit in hits:
        by_ratio.setdefault(rules.ratio(retrieval, hit, meaning_first), []).append(hit)
    kept = [hit for ratio, alike in by_ratio.items()
            for hit in background_filter(alike, background, ratio, min_keep=min_keep, passages=passages)]
    return sorted(kept, key=lambda hit: hit["distance"])


def fuse(ranked_lists: Iterable[list[Hit]], *, rrf_k: float, beside_weight: float,
         weights: Iterable[float] | None = None) -> dict[str, float]:
    """Reciprocal-rank fusion of ranked lists, smoothed along the conversation.

    Each list (best first) gives an entry ``weight/(rrf_k + rank)`` (its weight 1 unless
    ``weights`` says otherwise); an entry's score is the sum over the lists it is in. Ranks, not
    raw scores, are fused: word scores and distances have no common scale. Then every entry gets
    ``beside_weight`` times the fused scores of the turns beside it (just before and after it in the
    same chat), when those are candidates too:
    a conversation stays on a topic for a few turns, so a turn beside relevant ones is more
    likely relevant itself.

    Args:
        ranked_lists: each mechanism's hits, best first.
        rrf_k, beside_weight: ``retrieval.rrf_k`` and ``retrieval.beside_weight``.
        weights: each list's weight, in the lists' order (None: 1 each).

    Returns:
        id → score (≥ 0) for every entry of the lists.
    """
    ranked_lists = list(ranked_lists)
    fused: dict[str, float] = {}
    entries: dict[str, Hit] = {}
    for ranked, weight in zip(ranked_lists, weights or [1.0] * len(ranked_lists)):
        for rank, recall in enumerate(ranked, start=1):
            fused[recall["id"]] = fused.get(recall["id"], 0.0) + weight / (rrf_k + rank)
            entries.setdefault(recall["id"], recall)
    by_place = {place: entry_id for entry_id, recall in entries.items() if (place := turn_place(recall)) is not None}

    def beside(recall: Hit) -> float:
        place = turn_place(recall)
        if place is None:
            return 0.0
        chat, turn = place
        return sum(fused.get(by_place.get((chat, turn + step), ""), 0.0) for step in (-1, 1))

    return {entry_id: score + beside_weight * beside(entries[entry_id]) for entry_id, score in fused.items()}


def with_context(relevant: set[str], fused: Mapping[str, float], context_ratio: float) -> set[str]:
    """The relevant entries plus, as context, the next best candidates by fused score:
    ``⌊context_ratio · |relevant|⌋`` of them. Nothing relevant, nothing added: a message
    about nothing in the chat injects nothing.

    Args:
        relevant: the ids that stand out.
        fused: every candidate's fused score (:func:`fuse`).
        context_ratio: ``retrieval.context_ratio``.

    Returns:
        The ids to score.
    """
    others = sorted((entry_id for entry_id in fused if entry_id not in relevant), key=lambda i: (-fused[i], i))
    return relevant | set(others[: int(context_ratio * len(relevant))])


def merge_and_score(
    lists: Iterable[list[Hit]],
    now: float,
    relevance: Mapping[str, float] | None = None,
    *,
    weight_similarity: float,
    weight_recency: float,
    weight_popularity: float,
    recency_window_days: float,
    popularity_norm: float,
    max_results: int,
) -> list[Hit]:
    """De-duplicate by id, score, sort best-first, keep ``max_results``.

    An entry found by several mechanisms keeps the copy with the smallest distance;
    ``mechanisms`` lists every mechanism that found it (priority order, unknown ones
    last) and ``mechanism`` is the first of them. Each returned dict is a copy with
    ``blended_score`` added:

        ws·similarity + wr·recency + wp·min(access_count/norm, 1)
        similarity = relevance / the highest relevance of the entries (in [0, 1]), 1 for
                     exact hits (distance 0 from the specific-key lookup); without
                     ``relevance``, 1/(1 + distance)
        recency = max(0, 1 − age/window), age = now − timestamp (an entry stamped in
        the future counts as age 0, so recency never exceeds 1)

    ``relevance`` maps ids to their fused score (:func:`fuse`); an id it lacks counts 0.
    Ties are broken by smaller distance, then newer timestamp, then id, so the order is
    deterministic. ``now`` and timestamps are unix seconds.

    Args:
        lists: the kept entries of each mechanism's list.
        now: the turn's time.
        relevance: id → fused score (:func:`fuse`).
        weight_similarity, weight_recency, weight_popularity, recency_window_days,
            popularity_norm: the ``retrieval`` settings of those names.
        max_results: ``prefetch.max_results`` (the ``search_memory`` tool: its own limit).

    Returns:
        At most ``max_results`` scored copies, best first.
    """
    best: dict[str, Hit] = {}
    found_by: dict[str, list[str]] = {}
    for recalls in lists:
        for recall in recalls:
            entry_id = recall["id"]
            mechanisms = found_by.setdefault(entry_id, [])
            if recall["mechanism"] not in mechanisms:
                mechanisms.append(recall["mechanism"])
            if entry_id not in best or recall["distance"] < best[entry_id]["distance"]:
                best[entry_id] = recall
    top = max((relevance.get(entry_id, 0.0) for entry_id in best), default=0.0) if relevance is not None else 0.0
    window = recency_window_days * _SECONDS_PER_DAY
    scored: list[Hit] = []
    for entry_id, recall in best.items():
        mechanisms = sorted(found_by[entry_id], key=_priority)
        metadata = dict(recall.get("metadata") or {})
        similarity = _similarity(recall, mechanisms[0], relevance, top)
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


def _similarity(recall: Hit, name: str, relevance: Mapping[str, float] | None, top: float) -> float:
    if relevance is None:
        return 1.0 / (1.0 + recall["distance"])
    if is_exact_hit(recall["distance"], name):
        return 1.0
    return relevance.get(recall["id"], 0.0) / top if top > 0 else 0.0


def _priority(name: str) -> int:
    return mechanism(name).priority
