"""What a question needs besides L3's reads, started ahead of its turn where it can be
(:class:`Ahead`): its vector, embedded while the turn waits for its chat; the chat's centroid and
its message's word search, read as the turn starts; the encoders a message needs, loaded before
its deadline starts; and the question's scale made from them (:meth:`Ahead.measure`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import suppress

import numpy as np

from memory.encoders.batches import QueryBatches
from memory.encoders.paired import asked_in_english
from memory.retrieval.finding.scale import Scale
from memory.retrieval.finding.futures import may_go_unread
from memory.retrieval.finding.search import WORD_SCAN_CHARS, L3Reads, WordHit, names_something
from memory.stores.archive_encoder import ArchiveEncoder
from memory.stores.chat_users import users_of_chat
from memory.stores.entry_index import Centroid
from memory.stores.redis_backend import RedisBackend, gather_bounded

_EMBEDDINGS_AHEAD = 64  # messages embedded ahead of their turn and not yet asked for, at most
_CHATS_SEEN = 4096  # chats whose last question's languages are remembered, at most


class Ahead:
    def __init__(self, redis: RedisBackend, encoder: ArchiveEncoder, reads: L3Reads) -> None:
        self.redis, self.encoder, self.reads = redis, encoder, reads  # the indexes, the queries' encoder, L3's reads
        # message -> its vector, and whether it was made for chats holding other languages
        self._embedding_ahead: dict[str, tuple[asyncio.Future[np.ndarray], bool]] = {}
        # chat -> whether its last question met other languages' lines (a chat's languages seldom change)
        self._met_every_language: dict[str, bool] = {}
        # chat -> its centroid, and its message searched by words (with the search's text, k and
        # share), read as its turn started (see read_ahead)
        self._centroid_ahead: dict[str, asyncio.Future[Centroid | None]] = {}
        self._words_ahead: dict[str, tuple[tuple[str, int, float], asyncio.Future[list[WordHit]]]] = {}
        # Messages of chats that speak at once are encoded together (memory/encoders/batches.py).
        self._queries = QueryBatches(reads.l3.run_blocking)

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
            searched = asyncio.ensure_future(self.reads.lexical_search([chat_id], text, k, max_df_share))
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

    async def measure_once_read(self, text: str, chats: Awaitable[list[str]], asked_in: str,
                                unless_found: Awaitable[object] | None = None) -> Scale | None:
        """:meth:`measure` for a question whose chats are still being read: started with the
        question, it waits for them itself (and, for one likely found in the L2.5 cache, for its
        lookup there first).

        Args:
            text: the question.
            chats: the chats it is searched in, being read.
            asked_in: the chat it was asked in.
            unless_found: the question's lookup in the L2.5 cache, awaited first: what it found
                (not None) leaves the question unmeasured (None), the scale filed with it serving.

        Returns:
            The question's scale; None when the lookup found it (a failed lookup: measured).
        """
        if unless_found is not None:
            with suppress(Exception):  # a failed lookup: measured (its failure is the thematic search's)
                if await unless_found is not None:
                    return None
        return await self.measure(text, await chats, asked_in)

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
        of_english_alone = not index.meets_every_language(centroid)
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
