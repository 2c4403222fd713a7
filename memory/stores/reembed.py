"""Re-embedding the archive with another encoder, in place (``goat reembed``).

Every L3 entry's vector is computed again from its text, chat by chat: in Chroma (each chat's
collection rebuilt aside and swapped in: vectors of another length, or laid out otherwise,
cannot go where the old ones were), and in the chat's entry index (its vectors and their sum;
the words and times stay as they are). While it runs, and until it finishes, no process
starts on the archive (:class:`EncoderMismatch`): searched with one encoder's query against
the other's vectors, it would answer nonsense. One re-embedding runs at a time; one that was
killed starts again at the chat it was in, with whatever encoder it is run with then (going
back included); a chat re-embedded twice ends the same, so nothing is lost and nothing is mixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from memory.encoders import of_every_language, other_languages
from memory.encoders.embeddings import LocalEmbeddings
from memory.errors import BackendUnavailable
from memory.settings import encoder_of
from memory.stores.archive_encoder import ENCODER_KEY, REEMBED_DONE_KEY, REEMBED_KEY, REEMBED_LEASE, ArchiveEncoder
from memory.stores.l3_backend import L3Backend
from memory.stores.redis_backend import RedisBackend

_BATCH = 256  # entries embedded and written per call


@dataclass(frozen=True)
class Reembedded:
    encoder: str  # the archive's encoder now
    previous: str | None  # before (None: the archive held no vectors)
    chats: int  # chats re-embedded by this run
    entries: int  # entries re-embedded by this run


async def reembed(redis: RedisBackend, l3: L3Backend, encoder: ArchiveEncoder, lock_seconds: float,
                  progress: Callable[[int, int], None] | None = None) -> Reembedded:
    """Re-embed the archive with the process's encoder (``embeddings.model``), or finish a
    re-embedding that was interrupted. Nothing to do when the archive is already the encoder's.

    Args:
        redis, l3: where the archive's vectors are (the entry index, Chroma).
        encoder: the process's, which re-embeds them.
        lock_seconds: a lease's time (``redis.chat_lock_seconds``).
        progress: called with (entries done, entries in all) as chats are done.
    Returns:
        What was done.
    Raises:
        BackendUnavailable: another re-embedding runs now.
    """
    # A killed re-embedding's lease runs out within the lease time: then this one takes over.
    patience = 1.5 * lock_seconds
    async with (await redis.chat_locks()).hold(REEMBED_LEASE, wait=patience) as alone:
        if not alone:
            raise BackendUnavailable("L3", "another `goat reembed` is re-embedding the archive now",
                                     "wait for it to finish (its progress bar says how far it is)")
        return await _reembed(redis, l3, encoder, progress)


async def _reembed(redis: RedisBackend, l3: L3Backend, encoder: ArchiveEncoder,
                   progress: Callable[[int, int], None] | None) -> Reembedded:
    embeddings = await encoder.embeddings(checked=False)
    target, previous = embeddings.record, await encoder.of_archive()
    client = await redis.client()
    unfinished = await client.hget(REEMBED_KEY, "to")
    if unfinished is None and previous in (None, target):
        await encoder.check(target)  # records it on an empty archive
        return Reembedded(embeddings.name, previous and encoder_of(previous), 0, 0)
    if unfinished is not None and unfinished.decode() != target:
        await client.delete(REEMBED_DONE_KEY)  # every chat is re-embedded with this one, afresh
    await client.hset(REEMBED_KEY, "to", target)

    store = await l3.episodic()
    await l3.call(store.finish_rebuilds)
    done = {member.decode() for member in await client.smembers(REEMBED_DONE_KEY)}
    chats = [chat for chat in await l3.call(store.chat_ids) if chat not in done]
    sizes = [await l3.call(store.count, chat) for chat in chats]
    total, finished = sum(sizes), 0
    for chat, size in zip(chats, sizes):
        await _reembed_chat(redis, l3, embeddings, chat)
        await client.sadd(REEMBED_DONE_KEY, chat)
        finished += size
        if progress is not None:
            progress(finished, total)

    async with client.pipeline(transaction=False) as pipe:  # different slots in a cluster
        pipe.set(ENCODER_KEY, target)
        pipe.delete(REEMBED_KEY)
        pipe.delete(REEMBED_DONE_KEY)
        await pipe.execute()
    await (await redis.cache()).clear()  # cached searches were ranked with the old vectors
    return Reembedded(embeddings.name, previous and encoder_of(previous), len(chats), total)


async def _reembed_chat(redis: RedisBackend, l3: L3Backend, embeddings: LocalEmbeddings, chat_id: str) -> None:
    store, index = await l3.episodic(), await redis.entry_index()
    entries = await l3.call(store.entries, chat_id)
    total, indexed_count, kinds = np.zeros(embeddings.encoder.dimensions, dtype=np.float64), 0, np.zeros(2, int)
    # A chat of every language (marked, or its lines make it one): every entry gets e5's block.
    latin, other_script = other_languages([entry["content"] for entry in entries])
    every_language = (not index.tells_english_apart or (await index.languages(chat_id))[0]
                      or of_every_language(len(latin), other_script))
    if every_language and index.tells_english_apart:
        await index.hold_every_language(chat_id)
    encode = partial(embeddings.encoder.encode, every_language=every_language)
    await index.clear_vectors(chat_id)
    await l3.call(store.begin_rebuild, chat_id)
    for start in range(0, len(entries), _BATCH):
        batch = entries[start : start + _BATCH]
        vectors = await l3.run_blocking(encode, [entry["content"] for entry in batch])
        await l3.call(store.add_to_rebuild, chat_id, batch, vectors)
        indexed = await index.set_vectors(chat_id, [(entry["id"], entry["content"]) for entry in batch], vectors)
        total += vectors[indexed].astype(np.float64).sum(axis=0)
        indexed_count += int(indexed.sum())
        kinds += index.kinds(vectors[indexed])
    await l3.call(store.swap_in_rebuild, chat_id)
    if indexed_count:
        await index.set_sum(chat_id, total, indexed_count, *kinds.tolist())
