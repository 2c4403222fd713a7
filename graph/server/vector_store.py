"""The archive of a run's chat as LangChain's vector store, for a graph LangGraph's server runs
beside GOAT's (``langgraph.json``): a retrieval node calls :func:`served_vector_store` with its
run's config, on the server's one memory (the Store's and the graph's)."""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig

from memory.facade import ArchiveVectorStore
from nodes.services import Services


async def served_vector_store(config: RunnableConfig) -> ArchiveVectorStore:
    """The archive of the run's chat (its thread) as LangChain's vector store
    (``MemoryScope.vector_store``), for the run's caller: the user the server authenticated
    (``graph/server/auth.py``), which no client can set. With ``server.tokens``, only a chat the
    caller wrote to, as the Store reaches only those.

    Args:
        config: the run's config, as a node is given it.
    Returns:
        The chat's archive, read-only.
    Raises:
        PermissionError: with ``server.tokens``, the chat is not one the caller wrote to, or the
            run has no caller (it was not started by the server).
        LookupError: nothing of the chat is archived yet.
    """
    configurable = config.get("configurable") or {}
    caller, chat_id = configurable.get("langgraph_auth_user_id"), str(configurable.get("thread_id"))
    services = Services.for_server()
    memory = services.memory
    if services.settings.server.tokens and (caller is None or chat_id not in await memory.admin.chats_of(caller)):
        raise PermissionError(f"chat {chat_id!r} is not one of yours: a run reaches the archive of a chat you "
                              "wrote to")
    return await memory.scope(chat_id, caller or services.settings.server.developer).vector_store()
