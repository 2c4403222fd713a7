"""L3's reads (:class:`L3Reads`): by meaning (Chroma's vector index, or a time range ranked from
the entry index's vectors), by words (BM25 over the word index), by structural key, every
distance put on the query's scale (:class:`~memory.retrieval.finding.scale.Scale`, which
:meth:`~memory.retrieval.finding.ahead.Ahead.measure` makes). One question's search under way, which the
recall pipeline's mechanisms share, is :class:`~memory.retrieval.finding.question.Question`."""

from __future__ import annotations

import re
from functools import partial

import numpy as np

from memory.encoders.embeddings import ChatEmbeddings
from memory.encoders.encoder import Space
from memory.retrieval.finding.scale import Scale
from memory.stores.archive_encoder import ArchiveEncoder
from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import RedisBackend, gather_bounded
from memory.turns import Hit, archive_id
from memory.words import names_nothing

_TURN_KEY = re.compile(r"^turn_(\d+)$")
# A time range of at most this many entries is ranked exactly from the index's vectors, whose
# cost grows with the range; a wider one from the 300 nearest by Chroma's vector index, whose
# cost does not, cut to the range by the index's times (docs/design.md has both costs).
_EXACT_RANGE = 2048
_DEEPER_K = 300
_KEY_CANDIDATES = 64  # newest entries holding a key's words, checked for the key itself
_WORD_CANDIDATES = 256  # newest entries holding a search's every word, ranked by meaning
# The word search reads a message's first lines: its cost grows with the distinct words asked.
WORD_SCAN_CHARS = 2_000
# A word search's hit: the entry, its vector as the entry index holds it, its word score.
WordHit = tuple[Hit, np.ndarray, float]


def _of_space(space: Space, distance: float) -> bool:
    """Whether a passage found searching ``space`` is one of its own (not one it shares no block with)."""
    return distance < space.outside


def _within(timestamp: float, after: float | None, before: float | None) -> bool:
    return (after is None or timestamp >= after) and (before is None or timestamp <= before)


class L3Reads:
    def __init__(self, redis: RedisBackend, l3: L3Backend, encoder: ArchiveEncoder) -> None:
        self.redis, self.l3, self.encoder = redis, l3, encoder  # the indexes, Chroma, the queries' encoder

    async def chat_embeddings(self, chat_id: str) -> ChatEmbeddings:
        """How LangChain's vector store over the chat's archive embeds its questions: as
        :meth:`~memory.retrieval.finding.ahead.Ahead.measure` embeds them for the chat's languages as
        they are now (a chat that comes to hold another language needs a new one), without
        marking the chat as that may: it writes nothing.

        Raises:
            EncoderMismatch: the archive holds another encoder's vectors.
            BackendUnavailable: Redis cannot be reached.
        """
        index = await self.redis.entry_index()
        encoder = (await self.encoder.embeddings()).encoder
        return ChatEmbeddings(encoder, index.meets_every_language(await index.centroid([chat_id])))

    async def search(
        self, chats: list[str], scale: Scale, k: int, after: float | None = None, before: float | None = None,
    ) -> list[Hit]:
        """The chats' ``k`` entries nearest to the query of ``scale`` (:meth:`.Ahead.measure`), closest
        first on it; with ``after`` or ``before`` (unix seconds, inclusive), among those timed
        within that range.

        Without a range this is Chroma's vector index, searched in each space the chats hold
        passages in. A chat's range is ranked exactly from the vectors in its own index when it
        holds at most ``_EXACT_RANGE`` entries; a wider one by a deeper vector search cut to the
        range.
        """
        store = await self.l3.episodic()
        spaces = scale.searched()
        queries = [space.query for space in spaces]
        if after is None and before is None:
            found: list[Hit] = [{**hit, "distance": float(scale.calibrate(space, hit["distance"]))}
                     for space, hits in zip(spaces, await self.l3.call(store.search, chats, queries, k))
                     for hit in hits if _of_space(space, hit["distance"])]
            return sorted(found, key=lambda hit: hit["distance"])[:k]
        index = await self.redis.entry_index()

        async def of_chat(chat: str) -> list[Hit]:
            numbers = await index.between(chat, after, before, limit=_EXACT_RANGE + 1)  # a wider one's are not read
            if len(numbers) <= _EXACT_RANGE:
                return await self._nearest_among(chat, numbers, scale, k)
            deeper = sorted([(entry_id, float(scale.calibrate(space, distance)))
                             for space, pairs in zip(spaces, await self.l3.call(
                                 store.nearest_ids, chat, queries, _DEEPER_K))
                             for entry_id, distance in pairs
                             if _of_space(space, distance)], key=lambda pair: pair[1])
            times = await index.times(chat, [entry_id for entry_id, _ in deeper])
            distance_of = dict([pair for pair, timestamp in zip(deeper, times)
                                if timestamp is not None and _within(timestamp, after, before)][:k])
            hits = await self.l3.call(store.get_by_ids, [chat], list(distance_of))
            return [{**hit, "distance": distance_of[hit["id"]]} for hit in hits]

        found = [hit for hits in await gather_bounded(of_chat, chats) for hit in hits]
        return sorted(found, key=lambda hit: hit["distance"])[:k]

    async def holding_words(
        self, chats: list[str], text: str, scale: Scale, k: int, after: float | None = None,
        before: float | None = None,
    ) -> list[Hit]:
        """The chats' ``k`` entries nearest to the query of ``scale`` (on it) among those holding
        every word of ``text``, however common (what an explicit search names), closest first;
        with ``after`` or ``before`` (unix seconds, inclusive), among those timed within that
        range. Each chat's newest ``_WORD_CANDIDATES`` such entries are ranked; entries its word
        index does not hold yet are not among them."""
        index = await self.redis.lexical_index()
        bounded = after is not None or before is not None

        async def of_chat(chat: str) -> list[Hit]:
            within = await index.entries.between(chat, after, before) if bounded else None
            numbers = await index.holding_every_word(chat, text, _WORD_CANDIDATES, among=within)
            return await self._nearest_among(chat, numbers, scale, k)

        found = [hit for hits in await gather_bounded(of_chat, chats) for hit in hits]
        return sorted(found, key=lambda hit: hit["distance"])[:k]

    async def _nearest_among(self, chat: str, numbers: np.ndarray, scale: Scale, k: int) -> list[Hit]:
        """The ``k`` of these indexed entries of the chat nearest to the query of ``scale``, ranked
        exactly from the index's vectors, as hits (Chroma gives their text)."""
        if len(numbers) == 0:
            return []
        index = await self.redis.entry_index()
        distances = scale.of_passages(await index.vectors(chat, numbers, scale.columns))
        nearest = np.argsort(distances, kind="stable")[:k]
        ids = await index.ids(chat, numbers[nearest])
        distance_of = {entry_id: float(distances[n]) for entry_id, n in zip(ids, nearest) if entry_id}
        hits = await self.l3.call((await self.l3.episodic()).get_by_ids, [chat], list(distance_of))
        return [{**hit, "distance": distance_of[hit["id"]]} for hit in hits]

    async def find_by_keys(self, chats: list[str], keys: list[str], limit: int) -> list[Hit]:
        """Exact lookup of structural keys: id match, then content contains (case-sensitive).
        Content is searched through the word index (the entries holding every word of the key,
        then checked). Each chat's entries are read from Chroma in one call, its id matches and
        its candidates together."""
        store, index = await self.l3.episodic(), await self.redis.lexical_index()
        ids = list(keys)
        for key in keys:
            if match := _TURN_KEY.match(key):
                ids += [archive_id(chat, int(match.group(1))) for chat in chats]

        async def holding(key: str, chat: str) -> list[str]:
            numbers = await index.holding_every_word(chat, key, _KEY_CANDIDATES)
            return [entry_id for entry_id in await index.entries.ids(chat, numbers) if entry_id]

        candidates = {key: dict(zip(chats, await gather_bounded(partial(holding, key), chats))) for key in keys}

        async def read(chat: str) -> list[Hit]:
            wanted = dict.fromkeys([*ids, *(entry_id for key in keys for entry_id in candidates[key][chat])])
            return await self.l3.call(store.get_by_ids, [chat], list(wanted))

        read_in = dict(zip(chats, await gather_bounded(read, chats)))
        named = set(ids)
        found = {hit["id"]: hit for chat in chats for hit in read_in[chat] if hit["id"] in named}
        for key in keys:
            for chat in chats:
                held = set(candidates[key][chat])
                for hit in read_in[chat]:
                    if hit["id"] in held and hit["id"] not in found and key in hit["content"]:
                        found[hit["id"]] = hit
        return list(found.values())[:limit]

    async def lexical_search(
        self, chats: list[str], query: str, k: int, max_df_share: float
    ) -> list[WordHit]:
        """The chats' ``k`` best entries by the words of ``query`` (BM25), best first, each as
        (hit, its vector, its word score). Word scores of different chats are compared as they are.

        The vectors come from the entry index (float16, with the ids); Chroma is asked only for
        the entries' text and metadata, which costs it half as much as with their vectors.
        """
        index = await self.redis.lexical_index()
        per_chat = await gather_bounded(lambda chat: index.search(chat, query, k, max_df_share), chats)
        found = sorted(
            ((chat, entry_id, score, vector)
             for chat, hits in zip(chats, per_chat) for entry_id, score, vector in hits),
            key=lambda found: -found[2],
        )[:k]
        if not found:
            return []
        store = await self.l3.episodic()
        ids_by_chat: dict[str, list[str]] = {}
        for chat, entry_id, _, _ in found:
            ids_by_chat.setdefault(chat, []).append(entry_id)
        vector_of = {entry_id: vector for _, entry_id, _, vector in found}

        def read() -> dict[str, tuple[Hit, np.ndarray]]:
            return {hit["id"]: (hit, vector_of[hit["id"]])
                    for chat, ids in ids_by_chat.items() for hit in store.get_by_ids([chat], ids)}

        by_id = await self.l3.run_blocking(read)
        return [(*by_id[entry_id], score) for _, entry_id, score, _ in found if entry_id in by_id]


def names_something(text: str) -> bool:
    """Whether a question is searched at all, by meaning or by words: its first lines name a
    topic (not only function words and greetings)."""
    return not names_nothing(text[:WORD_SCAN_CHARS])

