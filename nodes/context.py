"""Run-time context of the graph: per-run knob overrides and the process's services.

Studio and notebooks tune a run with ``context={"overrides": {"retrieval.gap_significance": 2.5}}``;
the same dotted names as ``goat.toml`` and validated the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from langgraph.runtime import Runtime

from memory.settings import Settings
from nodes.services import Services


@dataclass
class Context:
    overrides: dict[str, Any] = field(default_factory=dict)
    # A Services. Typed Any so the context stays JSON-schema-able for
    # Studio, which cannot pass objects: there the graph builds one per process.
    services: Any = None


def resolve(runtime: Runtime[Context] | None) -> tuple[Services, Settings]:
    """The services and the effective settings (with this run's overrides) for a node."""
    context = runtime.context if runtime is not None and runtime.context is not None else Context()
    if isinstance(context, dict):  # the Studio server may hand the context over as JSON
        context = Context(**context)
    services = context.services or Services.for_server()
    return services, services.settings.with_overrides(context.overrides)


def turn_time(state: dict) -> float:
    """The instant the turn happens at (unix seconds); callers pass ``now`` to keep nodes consistent."""
    return float(state.get("now") or time.time())
