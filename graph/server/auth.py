"""Who may use the graph on LangGraph's server, and as whom (``langgraph.json`` declares it).

A run's user is the authenticated identity, whatever its input says, and a thread belongs to
whoever made it. With ``server.tokens`` (``GOAT_SERVER_TOKENS``) every request carries
``Authorization: Bearer <token>`` and is that token's user, a run's chat is its thread, and
nothing a run or a state edit sends can change either: no client can name another person's
user or chat and read their facts or L2. Without tokens, every request is ``server.developer``'s
(one person on a loopback ``langgraph dev``), who may name any chat to step through its turns.
"""

from __future__ import annotations

from functools import lru_cache

from langgraph_sdk import Auth

from graph.server.store import CHATS, FACTS, MEMORIES, NOTE, USERS, role_of
from graph.settings import Server, load_settings
from memory.facade import Memory
from nodes.services import Services

auth = Auth()
OWNER = "owner"  # the thread metadata naming who made it


@lru_cache(maxsize=1)
def _server() -> Server:
    return load_settings().server


def _refused(status: int, detail: str) -> Auth.exceptions.HTTPException:
    return Auth.exceptions.HTTPException(status_code=status, detail=detail)


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    server = _server()
    if not server.tokens:
        return server.developer
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and (user := server.user_of(given)) is not None:
        return user
    raise _refused(401, "a valid bearer token is required (Authorization: Bearer <token>)")


def _owned(ctx: Auth.types.AuthContext, value: dict) -> dict:
    # In place: the server keeps using the metadata object it handed over, not the key.
    value["metadata"][OWNER] = ctx.user.identity
    return {OWNER: ctx.user.identity}


@auth.on.threads.create
async def own_new_thread(ctx: Auth.types.AuthContext, value: Auth.types.on.threads.create.value) -> dict:
    return _owned(ctx, value)


@auth.on.threads.create_run
async def run_as_owner(ctx: Auth.types.AuthContext, value: Auth.types.on.threads.create_run.value) -> dict:
    """The run's user is the caller and its chat the thread, set on its input; what would change
    them otherwise (a state update in a command, another scope than the operator's) is refused."""
    if value.get("thread_id") is None:
        raise _refused(400, "a run needs a thread: the thread is the chat")
    kwargs, shared = value.get("kwargs") or {}, bool(_server().tokens)
    command = kwargs.get("command") or {}
    if shared and isinstance(command, dict) and command.get("update") is not None:
        raise _refused(403, "a run may not update the thread's state: its chat and user are its owner's")
    if shared and "memory_scope" in (kwargs.get("context") or {}):
        raise _refused(403, "memory_scope is the operator's setting: a run may not widen it")
    if isinstance(run_input := kwargs.get("input"), dict):
        run_input["user_id"] = ctx.user.identity
        if shared or not run_input.get("chat_id"):
            run_input["chat_id"] = str(value["thread_id"])
    return _owned(ctx, value)


@auth.on.threads.update
async def update_own_thread(ctx: Auth.types.AuthContext, value: Auth.types.on.threads.update.value) -> dict:
    if _server().tokens and not value.get("metadata") and not value.get("action"):  # a state edit could name another chat
        raise _refused(403, "the thread's state is written by its runs only")
    return {OWNER: ctx.user.identity}


@auth.on.threads
async def own_threads(ctx: Auth.types.AuthContext, value: dict) -> dict:
    return {OWNER: ctx.user.identity}


@auth.on.assistants
async def assistants(ctx: Auth.types.AuthContext, value: dict) -> None:
    # Assistants carry knobs, memory_scope among them: with several people, only read them.
    if _server().tokens and ctx.action not in ("read", "search"):
        raise _refused(403, "assistants are the operator's")


@auth.on.store
async def own_namespaces(ctx: Auth.types.AuthContext, value: dict) -> None:
    """With tokens, a store call names the caller's own namespace: ``("users", <them>, …)`` or
    ``("chats", <a chat they wrote to>, …)``, and a note put is kept as theirs (another's note or
    turn there is not theirs to rewrite or delete). A chat no one wrote to yet is no one's: a put
    there would let its caller read what the chat's real user writes later (a Telegram chat's id
    is its user's). The store (``graph/server/store.py``) refuses what is not GOAT's."""
    if not _server().tokens:
        return
    identity, namespace = ctx.user.identity, tuple(value.get("namespace") or ())
    memory = Services.for_server().memory
    if namespace[:2] == (USERS, identity):
        return
    if namespace[:1] == (CHATS,) and len(namespace) > 1:
        chat_id = namespace[1]
        if chat_id in await memory.admin.chats_of(identity):
            if ctx.action in ("put", "delete"):
                await _refuse_anothers_entry(memory, identity, chat_id, value["key"])
            if ctx.action == "put" and isinstance(value.get("value"), dict):
                value["value"]["user_id"] = identity
            return
    raise _refused(403, f"a store call names your own namespace: ({USERS!r}, {identity!r}, {FACTS!r}) or "
                        f"({CHATS!r}, <a chat of yours>, {MEMORIES!r})")


async def _refuse_anothers_entry(memory: Memory, identity: str, chat_id: str, key: str) -> None:
    """In a chat several people wrote to, a note is whoever put it's and a turn whoever said it's:
    no one else rewrites or deletes it."""
    for entry in await memory.entries.of_ids(chat_id, [key]):
        owner = entry["metadata"].get("user_id")
        if owner != identity:
            whose = "a note belongs to whoever put it" if role_of(entry) == NOTE else "a turn to whoever said it"
            raise _refused(403, f"{key!r} is {owner}'s, not yours to rewrite or delete: {whose}")


@auth.on.crons
async def no_crons(ctx: Auth.types.AuthContext, value: dict) -> None:
    raise _refused(403, "crons are not served")
