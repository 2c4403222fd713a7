"""L1 facts in Letta: a ``facts`` core-memory block, through Letta's REST API.

Each user's facts live in the ``facts`` block of a Letta agent of their own, named
``goat-facts-<user>``; with ``memory.scope = "global"`` one shared agent, ``goat-facts``,
holds every user's facts in its block, keyed by user. The block's value is a JSON object
(key → value), so what Letta's own tools show is what GOAT reads.

Letta allows several agents with one name and has no compare-and-set on a block, so
every write runs under a lease on the agent's name (shared Redis: across workers too),
re-reads the block, changes it, and writes it back; when two agents with one name do exist
(made by another client), the oldest is the one used.
"""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from typing import Any, Callable

import httpx

from memory.stores.facts import clean_fact_text

BLOCK = "facts"
AGENT_PREFIX = "goat-facts"
# Letta's block limit is in characters: a user's block holds at most the facts budget
# (l1_facts_max_tokens, a few hundred tokens); the shared agent's holds every user's.
_USER_BLOCK_CHARS = 20_000
_SHARED_BLOCK_CHARS = 1_000_000


def agent_name(user_id: str) -> str:
    """The name of the user's agent. Letta allows only ``[A-Za-z0-9 _-]`` in names, so any other
    character (and ``_`` itself) is written as ``_`` and its code point in hex: one name per id."""
    escaped = "".join(c if c.isascii() and (c.isalnum() or c == "-") else f"_{ord(c):x}_" for c in user_id)
    return f"{AGENT_PREFIX}-{escaped}"


class LettaError(RuntimeError):
    """Letta answered, but not as expected (an error status or a block GOAT cannot read)."""


class LettaMissing(LettaError):
    """Letta answered 404: the agent or its block is not there."""


class LettaFactsStore:
    """Facts as a Letta agent's ``facts`` block: one agent per user, or one shared."""

    def __init__(self, url: str, *, token: str | None, timeout: float, shared: bool,
                 lease: Callable[[str], AbstractAsyncContextManager[None]]) -> None:
        """``lease(name)`` holds a lock on the agent named ``name`` across workers."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self._shared = shared
        self._lease = lease
        self._agent_ids: dict[str, str] = {}  # agent name -> id, once looked up

    async def aclose(self) -> None:
        await self._http.aclose()

    async def check(self) -> str:
        """The server's version, from its health endpoint (raises when Letta is unreachable)."""
        return f"Letta {(await self._request('GET', '/v1/health/')).get('version', '?')}, reachable"

    async def get_all(self, user_id: str) -> dict[str, str]:
        _, block = await self._agent_and_block(self._agent_name(user_id), create=False)
        return self._facts_of(user_id, block)

    async def upsert(self, user_id: str, key: str, value: str) -> None:
        key, value = clean_fact_text(key, "fact key"), clean_fact_text(value, "fact value")

        def put(facts: dict[str, str]) -> bool:
            facts[key] = value
            return True

        await self._change(user_id, put, create=True)

    async def delete(self, user_id: str, key: str) -> bool:
        key = clean_fact_text(key, "fact key")
        return await self._change(user_id, lambda facts: facts.pop(key, None) is not None)

    async def clear(self, user_id: str) -> None:
        name = self._agent_name(user_id)
        if self._shared:
            def drop_all(facts: dict[str, str]) -> bool:
                had = bool(facts)
                facts.clear()
                return had

            await self._change(user_id, drop_all)
            return
        async with self._lease(name):
            for agent in await self._agents_named(name):
                await self._request("DELETE", f"/v1/agents/{agent['id']}", missing_ok=True)
            self._agent_ids.pop(name, None)

    # ---- agents and their block -------------------------------------------------------

    async def _change(self, user_id: str, edit: Callable[[dict[str, str]], bool], *, create: bool = False) -> bool:
        """Read the block, ``edit`` the user's facts in place (it returns whether it changed
        them), and write the block back if so; all under the agent's lease. The agent is
        made first if ``create``."""
        name = self._agent_name(user_id)
        async with self._lease(name):
            agent, block = await self._agent_and_block(name, create=create)
            facts = self._facts_of(user_id, block)
            if agent is None or not edit(facts):
                return False
            if self._shared:
                block = {**block, user_id: facts} if facts else {k: v for k, v in block.items() if k != user_id}
            else:
                block = facts
            await self._request("PATCH", f"/v1/agents/{agent}/core-memory/blocks/{BLOCK}",
                                json={"value": json.dumps(block, ensure_ascii=False, sort_keys=True)})
            return True

    async def _agent_and_block(self, name: str, *, create: bool) -> tuple[str | None, dict[str, Any]]:
        """The agent named ``name`` and its block's JSON; (None, {}) when there is no such agent
        and ``create`` is false."""
        known = name in self._agent_ids
        agent = await self._agent(name, create=create)
        if agent is None:
            return None, {}
        try:
            return agent, await self._block(agent)
        except LettaMissing:
            if not known:
                raise
            # Deleted behind this process's back (another worker forgot the user): look again.
            del self._agent_ids[name]
            return await self._agent_and_block(name, create=create)

    def _agent_name(self, user_id: str) -> str:
        return AGENT_PREFIX if self._shared else agent_name(user_id)

    def _facts_of(self, user_id: str, block: dict[str, Any]) -> dict[str, str]:
        facts = block.get(user_id, {}) if self._shared else block
        if not isinstance(facts, dict):
            raise LettaError(f"the facts of {user_id!r} in Letta's {BLOCK!r} block are not a JSON object")
        return {str(key): str(value) for key, value in facts.items()}

    async def _agent(self, name: str, *, create: bool) -> str | None:
        """The id of the agent named ``name`` (the oldest, if several), made if ``create``."""
        if name in self._agent_ids:
            return self._agent_ids[name]
        agents = await self._agents_named(name)
        if not agents and not create:
            return None
        if agents:
            agent = agents[0]["id"]
        else:
            limit = _SHARED_BLOCK_CHARS if self._shared else _USER_BLOCK_CHARS
            agent = (await self._request("POST", "/v1/agents/", json={
                "name": name,
                "memory_blocks": [{"label": BLOCK, "value": "{}", "limit": limit}],
                # Required by the API; GOAT never sends the agent a message, so no model runs.
                "model": "letta/letta-free",
                "embedding": "letta/letta-free",
                "include_base_tools": False,
            }))["id"]
        self._agent_ids[name] = agent
        return agent

    async def _agents_named(self, name: str) -> list[dict[str, Any]]:
        agents = await self._request("GET", "/v1/agents/", params={"name": name})
        return sorted((a for a in agents if a.get("name") == name), key=lambda a: (a.get("created_at") or "", a["id"]))

    async def _block(self, agent: str) -> dict[str, Any]:
        block = await self._request("GET", f"/v1/agents/{agent}/core-memory/blocks/{BLOCK}")
        try:
            value = json.loads(block.get("value") or "{}")
        except json.JSONDecodeError as exc:
            raise LettaError(f"Letta's {BLOCK!r} block of agent {agent} is not JSON ({exc})") from None
        if not isinstance(value, dict):
            raise LettaError(f"Letta's {BLOCK!r} block of agent {agent} is not a JSON object")
        return value

    async def _request(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        if response.status_code == 404:
            if missing_ok:
                return None
            raise LettaMissing(f"Letta has no {path} (404)")
        if response.is_error:  # the body is left out: it may echo a fact
            raise LettaError(f"Letta answered {method} {path} with {response.status_code} {response.reason_phrase}")
        return response.json() if response.content else None
