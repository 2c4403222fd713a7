"""L3 reads: by meaning (Chroma's vector index, or a time range ranked from the entry index's
vectors), by words (BM25 over the word index), by structural key, and the query's scale (its
spaces and their backgrounds: the query's mean distance to the chats' entries in each), which
every distance read here is put on. One question's search under way, which the recall
pipeline's mechanisms share, is :class:`~memory.retrieval.question.Question`."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from functools import partial

import numpy as np
from redis.exceptions import RedisError

from memory.encoders.batches import QueryBatches
from memory.encoders.embeddings import ChatEmbeddings
from memory.encoders.encoder import Encoder, Space
from memory.encoders.paired import asked_in_english
from memory.retrieval.scale import Scale
from memory.stores.archive_encoder import ArchiveEncoder
from memory.stores.archive_vector_store import ArchiveVectorStore
from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import RedisBackend, gather_bounded
from memory.stores.chat_users import users_of_chat
from memory.stores.entry_index import Centroid, EntryIndex
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
_EMBEDDINGS_AHEAD = 64  # messages embedded ahead of their turn and not yet asked for, at most
_CHATS_SEEN = 4096  # chats whose last question's languages are remembered, at most
_QUESTIONS_CACHED = 4096  # questions this process last found in the L2.5 cache or filed there, at most


@dataclass(frozen=True)
class Searched:
    """What a question's search found, as the L2.5 cache keeps it: the nearest entries by meaning,
    those by words (None: not searched by words), both with their distances on the question's
    scale, and the scale itself, so that a question asked again is neither encoded nor searched.
    The scope's writes and forgets invalidate it with the entries it names (access counts
    excepted: they may be as old as the cache's TTL)."""

    thematic: list[Hit]
    words: list[Hit] | None
    scale: Scale

    def record(self) -> dict:
        return {"thematic": self.thematic, "words": self.words, "scale": self.scale.record()}

    @classmethod
    def of_record(cls, record: dict, encoder: Encoder) -> Searched:
        return cls(record["thematic"], record["words"], Scale.of_record(record["scale"], encoder))


def _of_space(space: Space, distance: float) -> bool:
    """Whether a passage found searching ``space`` is one of its own (not one it shares no block with)."""
    return distance < space.outside


def _within(timestamp: float, after: float | None, before: float | None) -> bool:
    return (after is None or timestamp >= after) and (before is None or timestamp <= before)


class L3Search:
    def __init__(self, redis: RedisBackend, l3: L3Backend, encoder: ArchiveEncoder) -> None:
        self.redis, self.l3, self.encoder = redis, l3, encoder  # the indexes and cache, Chroma, the queries' encoder
        # message -> its vector, and whether it was made for chats holding other languages
        self._embedding_ahead: dict[str, tuple[asyncio.Future[np.ndarray], bool]] = {}
        # chat -> whether its last question met other languages' lines (a chat's languages seldom change)
        self._met_every_language: dict[str, bool] = {}
        # chat -> its centroid, and its message searched by words (with the search's text, k and
        # share), read as its turn started (see read_ahead)
        self._centroid_ahead: dict[str, asyncio.Future[Centroid | None]] = {}
        self._words_ahead: dict[str, tuple[tuple[str, int, float], asyncio.Future[list[WordHit]]]] = {}
        # Questions (their text's hash: a message may be long) whose last lookup in the L2.5 cache
        # found them, or whose search was filed there: asked again, they are likely found there
        # again, and are neither embedded nor searched by words ahead of the lookup.
        self._likely_cached: dict[int, None] = {}
        # Messages of chats that speak at once are encoded together (memory/encoders/batches.py).
        self._queries = QueryBatches(l3.run_blocking)

    def embed_ahead(self, text: str, chat_id: str | None = None) -> None:
        """Start embedding a message whose turn is about to run: the model works in its thread
        while the turn waits for the chat's lock and reads its checkpoint (~6 ms), and
        :meth:`measure` then finds the vector ready. It is made as the chat's last question
        needed it: for chats of English alone (most), or with e5's block too."""
        if text in self._embedding_ahead:
            return
        # Messages whose turn never measured them: it failed first, or the L2.5 cache answered.
        while len(self._embedding_ahead) >= _EMBEDDINGS_AHEAD:
            self._embedding_ahead.pop(next(iter(self._embedding_ahead)))
        every_language = self._met_every_language.get(chat_id, False) if chat_id is not None else False
        ahead = asyncio.ensure_future(self._embed(text, every_language))
        self._embedding_ahead[text] = ahead, every_language
        may_go_unread(ahead)  # read by its turn, if any

    def likely_cached(self, text: str) -> bool:
        """Whether the question ``text`` was last found in the L2.5 cache, or filed there, by this
        process: a hint (another process's writes may have invalidated it since)."""
        return hash(text) in self._likely_cached

    def note_cached(self, text: str, cached: bool) -> None:
        """Record whether the question ``text`` was found in (or filed to) the L2.5 cache."""
        key = hash(text)
        self._likely_cached.pop(key, None)
        if cached:
            self._likely_cached[key] = None
            while len(self._likely_cached) > _QUESTIONS_CACHED:
                self._likely_cached.pop(next(iter(self._likely_cached)))

    def forget_cached_questions(self) -> None:
        """The L2.5 cache was emptied: no question is likely found there any more."""
        self._likely_cached.clear()

    def read_ahead(self, chat_id: str, message: str, k: int, max_df_share: float) -> None:
        """Start reading, for the chat's turn, what its message's search of that chat alone
        needs besides the message's vector: the chat's centroid, and the ``k`` entries best
        matching the message's words (its word search). The turn holds the chat from now until
        :meth:`drop_ahead`. Both are read while the turn reads its checkpoint and the encoder
        embeds the message. The word search's Python then runs while the encoder leaves the
        interpreter free, not beside Chroma's query, which needs it. :meth:`measure` and the
        question's word search (with the same ``k`` and share) find them ready. Nothing is
        written to the chat's index meanwhile (the archiver writes between turns), so they
        are what the question would read."""
        self.drop_ahead(chat_id)
        self._centroid_ahead[chat_id] = may_go_unread(asyncio.ensure_future(self._read_centroid([chat_id])))
        text = message[:WORD_SCAN_CHARS]
        if names_something(text):
            searched = asyncio.ensure_future(self.lexical_search([chat_id], text, k, max_df_share))
            self._words_ahead[chat_id] = (text, k, max_df_share), may_go_unread(searched)

    def drop_ahead(self, chat_id: str) -> None:
        """The chat's turn has ended: what was read for it and not used is not kept."""
        _, words = self._words_ahead.pop(chat_id, (None, None))
        for ahead in (self._centroid_ahead.pop(chat_id, None), words):
            if ahead is not None:
                ahead.cancel()

    def words_found_ahead(self, chats: list[str], text: str, k: int,
                          max_df_share: float) -> asyncio.Future[list[WordHit]] | None:
        """The word search :meth:`read_ahead` started for this search, if it did (taken: it
        serves one question)."""
        if len(chats) == 1 and (ahead := self._words_ahead.get(chats[0])) and ahead[0] == (text, k, max_df_share):
            return self._words_ahead.pop(chats[0])[1]
        return None

    async def _read_centroid(self, chats: list[str]) -> Centroid | None:
        return await (await self.redis.entry_index()).centroid(chats)

    async def load_for(self, text: str) -> None:
        """Load what embedding ``text`` needs that this process has not loaded yet (e5, ~1.7 s, at
        the first question in another script it meets), so that a search's deadline starts once
        it is loaded: that question is searched, not timed out. The vector made on the way
        waits for :meth:`measure` (unused if the L2.5 cache answers). No backend is asked (the
        archive's encoder is checked within the deadline, by :meth:`measure`): a store that does
        not answer cannot hold the turn here. Likewise, when many chats speak at once, until the
        message's vector, queued behind theirs (:class:`QueryBatches`), is made: the deadline then
        times the search's own work, not the queue before it."""
        if (await self.encoder.embeddings(checked=False)).encoder.loads_for(text):
            self.embed_ahead(text)
            await asyncio.shield(self._embedding_ahead[text][0])
        elif self._queries.queued(text) and (ahead := self._embedding_ahead.get(text)) is not None:
            await asyncio.wait([ahead[0]])  # however it ends: its failure is the search's to report

    async def warm_up(self) -> None:
        """A first forward pass, which pages the model's weights in: MiniLM's, and e5's too when
        some chat is one of every language."""
        await self._embed("warm-up", await (await self.redis.entry_index()).any_every_language())

    async def _embed(self, text: str, every_language: bool) -> np.ndarray:
        encoder = (await self.encoder.embeddings()).encoder
        return await self._queries.encode(encoder, text, every_language)

    async def measure(self, text: str, chats: list[str], asked_in: str | None = None) -> Scale:
        """The query, embedded as these chats need it, with its spaces and their backgrounds:
        what puts every distance to it on one scale. An English query is compared with the
        chats' other languages (in e5's space) only when they hold some; a query in another
        language marks the chats as ones of every language (their English entries are then
        given e5's block, behind the turns). ``asked_in``: the chat the question was asked in,
        whose next message is embedded ahead as this one needed."""
        index = await self.redis.entry_index()
        encoder = (await self.encoder.embeddings()).encoder
        # Made ahead, or now for chats of English alone (most), while the chats' centroid is read.
        ahead, ahead_every_language = self._embedding_ahead.pop(text, None) or (
            asyncio.ensure_future(self._embed(text, False)), False)
        centroid_ahead = self._centroid_ahead.pop(asked_in, None) if chats == [asked_in] else None
        try:
            centroid = await (centroid_ahead if centroid_ahead is not None else index.centroid(chats))
        except BaseException:
            ahead.cancel()
            raise
        of_english_alone = not of_every_language(index, centroid)
        other_script = not asked_in_english(text, False)  # e5's alone, whatever the chats hold
        if index.tells_english_apart and of_english_alone and other_script:
            marked = await gather_bounded(index.hold_every_language, chats)  # now: loading e5 may outlast the turn
            for chat, newly in zip(chats, marked):  # its questions are now compared in e5's space too
                if newly:
                    await self.redis.invalidate_searches_of(chat, await users_of_chat(self.redis, chat))
        every_language = not of_english_alone and not other_script
        if asked_in is not None:
            self._met_every_language.pop(asked_in, None)
            self._met_every_language[asked_in] = every_language
            while len(self._met_every_language) > _CHATS_SEEN:
                self._met_every_language.pop(next(iter(self._met_every_language)))
        if ahead_every_language == every_language or other_script:  # a query in another script: e5's alone either way
            vector = await ahead
        else:  # the encoder keeps the MiniLM block it made ahead: whatever is missing is added
            may_go_unread(ahead)
            vector = await self._embed(text, every_language)
        return Scale.of_query(encoder, vector, centroid)

    async def vector_store(self, chat_id: str) -> ArchiveVectorStore:
        """The chat's archive as LangChain's vector store, read-only, its questions embedded as
        :meth:`measure` embeds them for the chat's languages as they are now (a chat that comes
        to hold another language needs a new one), without marking the chat as :meth:`measure`
        may: it writes nothing.

        Raises:
            LookupError: nothing of the chat is archived yet.
            EncoderMismatch: the archive holds another encoder's vectors.
            BackendUnavailable: Redis or Chroma cannot be reached.
        """
        index = await self.redis.entry_index()
        encoder = (await self.encoder.embeddings()).encoder
        every_language = of_every_language(index, await index.centroid([chat_id]))
        return await self.l3.vector_store(chat_id, ChatEmbeddings(encoder, every_language))

    async def search(
        self, chats: list[str], scale: Scale, k: int, after: float | None = None, before: float | None = None,
    ) -> list[Hit]:
        """The chats' ``k`` entries nearest to the query of ``scale`` (:meth:`measure`), closest
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
            numbers = await index.between(chat, after, before)
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

    async def look_up(self, scope_key: str, digest: str) -> tuple[Searched | None, str | None]:
        """What the question of ``digest`` found when it was last searched in this scope, if the
        L2.5 cache holds it, and the scope's generation it was looked up under (None: the cache
        did not answer, and nothing is to be written to it)."""
        cache = await self.redis.cache()
        try:
            record, generation = await cache.lookup(scope_key, digest)
        except RedisError:
            return None, None
        encoder = (await self.encoder.embeddings()).encoder
        try:
            return (None if record is None else Searched.of_record(record, encoder)), generation
        except (KeyError, TypeError, ValueError):  # written by another version: searched, and written again
            return None, generation

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


def of_every_language(index: EntryIndex, centroid: Centroid | None) -> bool:
    """Whether questions to the chats of ``centroid`` meet lines in other languages than English
    (the encoder tells English apart, and the chats hold or were asked in another language)."""
    return index.tells_english_apart and centroid is not None and centroid.every_language


def names_something(text: str) -> bool:
    """Whether a question is searched at all, by meaning or by words: its first lines name a
    topic (not only function words and greetings)."""
    return not names_nothing(text[:WORD_SCAN_CHARS])


def may_go_unread(future: asyncio.Future) -> asyncio.Future:
    """``future``, whose outcome nobody may wait for: its failure is retrieved as it ends (no
    "exception was never retrieved" in the log); whoever waits for it still gets it."""
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    return future
