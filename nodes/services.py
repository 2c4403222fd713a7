"""The services a turn needs, built once per process and handed to the graph in its context."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.language_models import BaseChatModel

from memory.facade import Memory
from nodes.settings import NodeSettings
from nodes.toolkit.memory_tools import MEMORY_TOOL_NAMES
from nodes.toolkit.plugins import PluginRegistry


class ModelNotConfigured(RuntimeError):
    """Raised by the llm node when no chat model is configured."""

    def __init__(self) -> None:
        super().__init__(
            "no chat model configured: set GOAT_MODEL (e.g. gpt-4o-mini) and OPENAI_API_KEY, "
            "plus OPENAI_BASE_URL for a non-OpenAI endpoint (DeepSeek, Ollama, vLLM, OpenRouter…)"
        )


class UnreadableAnswer(RuntimeError):
    """The model's answer could not be made into a message (e.g. a tool call's arguments that are
    JSON but not an object); the turn fails before anything of it is written."""


class Services:
    def __init__(self, settings: NodeSettings, memory: Memory | None = None) -> None:
        self.settings = settings
        self.memory = memory or Memory(settings)
        self._model_http: Any = None  # the model client's connection pool, once made

    @cached_property
    def chat_model(self) -> BaseChatModel:
        llm = self.settings.llm
        if not llm.model:
            raise ModelNotConfigured()
        from openai import DefaultAsyncHttpxClient

        # Imported on first use: langchain_openai is slow to import.
        from nodes.toolkit.plain_body import PlainBodyChatOpenAI

        # A pool of its own, closed with the services: langchain-openai's default is one pool per
        # base URL for the whole process, whose connections belong to the event loop that opened
        # them and fail in the next one ("Event loop is closed").
        self._model_http = DefaultAsyncHttpxClient()
        return PlainBodyChatOpenAI(
            model=llm.model,
            api_key=llm.api_key,
            base_url=llm.base_url,
            temperature=llm.temperature,
            timeout=llm.timeout,
            max_retries=1,
            # Its per-chunk stall guard wraps each chunk in asyncio.wait_for, which on Python 3.11 can
            # leave a cancelled stream waiting for the model's next bytes: Ctrl-C or SIGTERM then hung
            # goat chat until the model went on. The client's read timeout still ends a dead stream.
            stream_chunk_timeout=None,
            http_async_client=self._model_http,
        )

    @cached_property
    def plugins(self) -> PluginRegistry:
        folder = self.settings.tools.plugins_dir or Path(self.settings.data_dir) / "plugins"
        return PluginRegistry(folder, reserved=MEMORY_TOOL_NAMES)

    @property
    def model_configured(self) -> bool:
        return bool(self.settings.llm.model)

    async def aclose(self) -> None:
        if self._model_http is not None:
            await self._model_http.aclose()
        await self.memory.aclose()

    async def __aenter__(self) -> "Services":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # The LangGraph server (Studio) loads the graph by module attribute and cannot hand
    # services over in the context; it gets one set per server process. Only graph/ makes them
    # (from the whole settings tree, with the chats' checkpoints, neither of which nodes can
    # import): the modules the server loads (the graph's, the store's) name the maker before
    # anything asks for them.
    _server_instance: ClassVar["Services | None"] = None
    _server_maker: ClassVar[Callable[[], "Services"] | None] = None
    _server_lock: ClassVar[threading.Lock] = threading.Lock()

    @staticmethod
    def serve_from(make: Callable[[], "Services"]) -> None:
        """Name what makes the server's services (called on the first :meth:`for_server`).

        Args:
            make: builds them (``graph.checkpoint.served_services``).
        """
        Services._server_maker = make

    @staticmethod
    def for_server() -> "Services":
        """The server process's one set of services, made on the first call.

        Returns:
            What the maker named by :meth:`serve_from` built.
        """
        with Services._server_lock:  # one set for the process, whichever class asks
            if Services._server_instance is None:
                if Services._server_maker is None:
                    raise RuntimeError("the server's services have no maker: graph/ names it (Services.serve_from)")
                Services._server_instance = Services._server_maker()
                atexit.register(Services._server_instance.memory.stop_at_exit)
            return Services._server_instance
