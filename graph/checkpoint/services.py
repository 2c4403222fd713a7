"""The services of every process that runs turns or erases memory (the faces, `goat import`, the
LangGraph server), with the chats' checkpoints: the one path by which whatever erases a text
(a forget, a delete, an edit, a re-import that replaces a turn) cuts it out of them too."""

from __future__ import annotations

import asyncio

from graph.checkpoint.dev_server import cut_from_dev_server, serving_in_memory
from graph.checkpoint.saver import RedisCheckpointSaver
from graph.settings import load_settings
from memory.facade import Memory
from nodes.services import Services
from nodes.settings import NodeSettings

# Channels no erase cuts a text out of: ids, which a cut would turn into another chat's or user's.
ID_CHANNELS = ("chat_id", "user_id")


class CheckpointedServices(Services):
    """The services, and the chats' checkpointer on memory's Redis (a thread per chat), made on
    first use: the turn graph writes with it, and every erase through this memory cuts what it
    erased out of the chats' checkpoints with it, whichever door the erase came by."""

    def __init__(self, settings: NodeSettings, memory: Memory | None = None) -> None:
        """Args:
            settings: the process's settings.
            memory: a memory already built (the tests' and benchmarks'); made from the settings by default.
        """
        super().__init__(settings, memory)
        self._checkpointer: RedisCheckpointSaver | None = None
        self._making = asyncio.Lock()
        self.memory.redact_copies_with(self._cut_from_checkpoints)

    async def checkpointer(self) -> RedisCheckpointSaver:
        """The chats' checkpointer, on the Redis L2 is on (a turn and its state fail together).
        Made once memory is connected: the embedded Redis starts with the first connection.

        Returns:
            The process's one checkpointer, closed with the services.
        """
        async with self._making:  # a turn and an erase may ask for it first together
            if self._checkpointer is None:
                connected, redis = await self.memory.connect(), self.settings.redis
                self._checkpointer = RedisCheckpointSaver.from_url(
                    connected.redis_url, cluster=redis.cluster, keep_turns=redis.checkpoint_keep_turns)
        return self._checkpointer

    async def _cut_from_checkpoints(self, chats: list[str], texts: list[str]) -> None:
        """What an erase took out of memory, cut out of the chats' checkpoints too: their turns'
        state holds what the turns read (facts, the prompt, recalls, the messages)."""
        checkpointer = await self.checkpointer()
        for chat_id in chats:
            await checkpointer.aredact_thread(chat_id, texts, kept=ID_CHANNELS)
        if serving_in_memory():  # `langgraph dev` keeps the turns run inside it too
            await cut_from_dev_server(chats, texts, ID_CHANNELS)

    async def aclose(self) -> None:
        """Close the checkpointer, then the model's client and memory."""
        # The checkpointer first: it drains the writes it holds into Redis, which closes after.
        if self._checkpointer is not None:
            await self._checkpointer.aclose()
            self._checkpointer = None
        await super().aclose()


def served_services() -> CheckpointedServices:
    """The LangGraph server's services (``Services.serve_from``), from the whole settings tree.

    Returns:
        Services whose erases (the Store's deletes among them) cut the chats' checkpoints too.
    """
    return CheckpointedServices(load_settings())
