"""The hooks the tests and benchmarks measure memory with, beside the verbs every caller uses
(``measurement_hooks(memory)``, from memory's façade; the product never calls them): the plain
vector search recall is compared with, the archive settled before what is timed, the search
cache emptied so that every question is searched, and the encoder's remembered queries so that
every message is embedded."""

from __future__ import annotations

from memory.retrieval.finding.question import QuestionServices
from memory.stores.archive import Archive
from memory.stores.archive_encoder import ArchiveEncoder
from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import RedisBackend, cache_scope_key
from memory.turns import Hit


class MeasurementHooks:
    def __init__(self, redis: RedisBackend, l3: L3Backend, encoder: ArchiveEncoder, finding: QuestionServices,
                 archiver: Archive, scope: str) -> None:
        """Args:
            redis: where the search cache is.
            l3: whose collections held in memory are counted.
            encoder: whose remembered queries are forgotten.
            finding: the search measured.
            archiver: what settles the archive.
            scope: ``memory.scope``, whose cached searches are forgotten.
        """
        self._redis, self._encoder, self._finding, self._archiver, self._scope = redis, encoder, finding, archiver, scope
        self._l3 = l3

    async def held_chats(self) -> int:
        """How many chats' collections the embedded store holds in memory now, once a release
        ``chroma.open_chats`` started has ended (0 before L3 is opened, or on a server)."""
        await self._l3.finish_release()
        return store.held_chats if (store := self._l3.opened) is not None else 0

    async def nearest(self, chat_ids: list[str], text: str, k: int) -> list[Hit]:
        """The chats' ``k`` entries nearest to ``text`` by meaning alone: the plain vector search
        of a top-k memory, which the benchmarks compare recall with (and search once per chat
        to have its vector index loaded before they time a turn).

        Returns:
            Hits (without a mechanism), closest first.
        """
        return await self._finding.reads.search(chat_ids, await self._finding.ahead.measure(text, chat_ids), k)

    async def settle(self) -> int:
        """Write what the outbox holds to L3 now, and give the English entries of chats of every
        language the e5 block they wait for.

        Returns:
            How many outbox entries are left (L3 unreachable).
        """
        left = await self._archiver.flush()
        if not left:
            await self._archiver.fill_all(None, None)
        return left

    async def forget_searches(self, chat_id: str | None = None, user_id: str | None = None) -> None:
        """Forget the cached searches of the chat's scope as ``memory.scope`` sets it (for
        ``user_id``, the chat's id by default), or of every scope without a chat."""
        cache = await self._redis.cache()
        self._finding.cached.forget()  # each question is then embedded and searched by words beside its lookup again
        if chat_id is None:
            await cache.clear()
        else:
            await cache.invalidate(cache_scope_key(chat_id, user_id or chat_id, self._scope))

    async def forget_encodings(self) -> None:
        """Forget the vectors the encoder remembers of the last queries: a message timed next is
        embedded as a new one is, even if a benchmark said it before."""
        (await self._encoder.embeddings()).encoder.forget_queries()
