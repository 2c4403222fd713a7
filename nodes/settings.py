"""The model's settings (``llm.*``), which the nodes read, and the tree as far as the nodes know it:
memory's sections and the model's (graph/settings.py adds the faces' and the server's)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from memory.settings import MemorySettings, Section


class LLM(Section):
    model: str = Field("", description="the chat model's name at the endpoint (empty: no model; every memory "
                       "command still works)")
    api_key: SecretStr | None = Field(None, description="the endpoint's API key")
    base_url: str | None = Field(None, description="an OpenAI-compatible endpoint (DeepSeek, Ollama, vLLM, "
                                 "OpenRouter…); unset: OpenAI's")
    temperature: float = Field(0.3, ge=0, le=2, description="the model's sampling temperature")
    timeout: float = Field(60.0, gt=0, description="seconds a model call may take")


class NodeSettings(MemorySettings):
    """Memory's sections and the model's: what the nodes and their services read."""

    llm: LLM = LLM()
