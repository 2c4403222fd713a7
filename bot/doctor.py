"""`goat doctor`'s checks beyond the memory backends: the model and the Telegram bot, each asked
for real with a short timeout, each failure naming the variable to fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from graph.settings import Settings
from memory.credentials import without_credentials
from memory.disk_failures import FULL_DISK_BYTES, free_bytes, readable_size
from memory.facade import BackendHealth
from memory.settings import SettingsError
from nodes.services import ModelNotConfigured
from nodes.settings import LLM

TIMEOUT = 10.0  # seconds a check waits for an answer: a doctor's question, not a turn's
OPENAI_API = "https://api.openai.com/v1"  # where the client goes without OPENAI_BASE_URL
SET_A_KEY = "set OPENAI_API_KEY (any text for a server that takes none, e.g. Ollama)"
SAID_CHARS = 300  # of an endpoint's error: a proxy may answer with a whole HTML page


@dataclass(frozen=True)
class Check:
    status: str  # "ok", "FAIL" or "note"
    text: str
    fix: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


# The memory backend checked with each section's settings: one not checked while its section is invalid.
_BACKEND_OF_SECTION = {"redis": "redis", "chroma": "chroma", "letta": "facts", "embeddings": "encoder"}


def invalid_sections(invalid: SettingsError | None) -> set[str]:
    """The sections holding the values ``invalid`` names (left at their defaults): what is checked
    with them would be checked with values the user did not give."""
    return {key.partition(".")[0] for key in invalid.keys} if invalid else set()


def unchecked_backends(sections: set[str], settings: Settings) -> set[str]:
    """The memory backends not to check while these sections are invalid (an invalid ``data_dir``:
    those whose embedded servers keep their data in it; a server named by its URL is checked)."""
    unchecked = {_BACKEND_OF_SECTION[section] for section in sections if section in _BACKEND_OF_SECTION}
    if "data_dir" in sections:
        embedded = {"redis": not settings.redis.url, "chroma": not settings.chroma.url}
        embedded["facts"] = embedded["redis"] and not settings.letta.url  # facts in Redis, or in Letta
        unchecked |= {name for name, in_data_dir in embedded.items() if in_data_dir}
    return unchecked


def check_data_folder(settings: Settings) -> Check:
    """Room on the disk of the data folder, where the embedded stores and the turn log write."""
    folder = Path(settings.data_dir).expanduser().resolve()
    free = free_bytes(folder)
    if free < FULL_DISK_BYTES:
        return Check("FAIL", f"data folder: {folder} — its disk is full ({readable_size(free)} free)",
                     "free space on that disk")
    return Check("ok", f"data folder: {folder} — {readable_size(free)} free")


def backend_mode(name: str, settings: Settings) -> str:
    """How a memory backend (redis, chroma, encoder, facts) is set up, in words."""
    if name == "redis":
        kind = "cluster" if settings.redis.cluster else "server"  # a cluster: any node's URL
        return (f"{kind} at {without_credentials(settings.redis.url)}" if settings.redis.url
                else f"embedded redis-server, data in {Path(settings.data_dir) / 'redis'}")
    if name == "chroma":
        return (f"server at {without_credentials(settings.chroma.url)}" if settings.chroma.url
                else f"embedded PersistentClient in {Path(settings.data_dir) / 'chroma'}")
    if name == "encoder":
        return f"{settings.embeddings.model} (onnxruntime, offline)"
    if settings.letta.url:
        agents = "one agent for everyone" if settings.memory.scope == "global" else "an agent per user"
        return f"Letta at {without_credentials(settings.letta.url)}, a 'facts' block in {agents}"
    return "Redis hash per user"


def backend_fix(backend: BackendHealth, settings: Settings) -> str:
    """What to do about a memory backend that failed: its own error's advice when it gave any."""
    if backend.fix:
        return backend.fix
    if backend.name == "facts":
        return ("start Letta at that address, or unset GOAT_LETTA_URL to keep facts in Redis" if settings.letta.url
                else "check the Redis line above")
    chroma = ("start the Chroma server at GOAT_CHROMA_URL (`chroma run --path DIR --port PORT`), or unset "
              "GOAT_CHROMA_URL for the embedded store" if settings.chroma.url else
              "make the folder above readable and writable, with space free, or set GOAT_CHROMA_URL to a "
              "Chroma server")
    return {"redis": "unset GOAT_REDIS_URL for the embedded server, or start yours",
            "chroma": chroma}.get(backend.name, "")


def missing_model(llm: LLM) -> str | None:
    """Why no turn can reach the model, naming the variable to set; None when it is configured."""
    if not llm.model:
        return str(ModelNotConfigured())
    if llm.api_key is None:
        return f"no API key for the model {llm.model}: {SET_A_KEY}"
    return None


async def check_model(llm: LLM) -> Check:
    """A one-token completion: the endpoint, the key and the model answer together."""
    if not llm.model:
        return Check("note", "model: none configured — set GOAT_MODEL and OPENAI_API_KEY "
                             "(and OPENAI_BASE_URL for a non-OpenAI endpoint); memory works without it")
    endpoint = f"model: {llm.model} at {llm.base_url or OPENAI_API}"
    if llm.api_key is None:
        return Check("FAIL", f"{endpoint} — no API key", SET_A_KEY)
    from openai import (APIConnectionError, APIStatusError, APITimeoutError, AsyncOpenAI, AuthenticationError,
                        NotFoundError, PermissionDeniedError)

    reach = ("start the server at OPENAI_BASE_URL, or correct OPENAI_BASE_URL" if llm.base_url
             else "check the network, or set OPENAI_BASE_URL to your endpoint")
    try:
        async with AsyncOpenAI(api_key=llm.api_key.get_secret_value(), base_url=llm.base_url, timeout=TIMEOUT,
                               max_retries=0) as client:
            # At the temperature turns ask for: a model that refuses it fails here, not in a turn.
            await client.chat.completions.create(model=llm.model, messages=[{"role": "user", "content": "ping"}],
                                                 temperature=llm.temperature, max_completion_tokens=1)
    except APITimeoutError:
        return Check("FAIL", f"{endpoint} — no answer within {TIMEOUT:g} s", reach)
    except APIConnectionError as exc:  # its own text is "Connection error."; the cause says which
        return Check("FAIL", f"{endpoint} — unreachable: {exc.__cause__ or exc}", reach)
    except (AuthenticationError, PermissionDeniedError) as exc:
        return Check("FAIL", f"{endpoint} — the key was refused: {_said(exc.message)}",
                     "set OPENAI_API_KEY to a key this endpoint accepts")
    except NotFoundError as exc:  # an unknown model, or a base URL without the API's path
        fix = ("set GOAT_MODEL to a model this endpoint serves" if "model" in exc.message.lower()
               else "set OPENAI_BASE_URL to the API's root (it usually ends in /v1)")
        return Check("FAIL", f"{endpoint} — {_said(exc.message)}", fix)
    except APIStatusError as exc:  # overloaded, out of credit…: the endpoint's words say what
        return Check("FAIL", f"{endpoint} — {_said(exc.message)}")
    return Check("ok", f"{endpoint} — answers")


async def check_telegram(api_url: str, token: str) -> Check:
    """``getMe`` with the bot's token: the Bot API is reachable and knows the bot."""
    api = api_url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            answer = await client.get(f"{api}/bot{token}/getMe")
        body = answer.json()
        if not isinstance(body, dict):
            raise ValueError(f"the answer is {type(body).__name__}, not a JSON object")
    except (httpx.HTTPError, ValueError) as exc:  # ValueError: an answer that is not JSON
        return Check("FAIL", f"telegram: the Bot API at {api} does not answer: {type(exc).__name__}: {exc}",
                     "check the network, or GOAT_TELEGRAM_API_URL")
    if answer.status_code in (401, 404):  # Telegram's answers to a wrong token and to a malformed one
        return Check("FAIL", f"telegram: the Bot API at {api} refused the token: {answer.status_code} "
                             f"{_said(str(body.get('description', '')))}",
                     "set TELEGRAM_BOT_TOKEN to the token @BotFather gave you (/mybots → API Token)")
    if not body.get("ok"):
        return Check("FAIL",
                     f"telegram: the Bot API at {api} answered {answer.status_code} "
                     f"{_said(str(body.get('description', '')))}")
    bot = body["result"]
    return Check("ok", f"telegram: @{bot.get('username')} (id {bot.get('id')}) via {api}")


def _said(text: str) -> str:
    """An endpoint's words on one line, cut short."""
    text = " ".join(text.split())
    return text if len(text) <= SAID_CHARS else text[: SAID_CHARS - 1] + "…"
