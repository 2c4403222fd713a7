"""Run-time context of the graph: this run's knobs, and the process's services.

Every setting a run may change is a typed field of its own, made from the settings (none is
written out here), named after its dotted name (``prefetch.timeout`` → ``prefetch_timeout``)
and described as the setting is; empty (None) means the settings' value. Studio renders the
fields as a form; ``goat inspect --set``, the bench and the notebooks set the same fields by
dotted name (:func:`run_context`), and the settings tree validates the values
(:func:`run_settings`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Optional

from langgraph.runtime import Runtime

from memory.settings import ENCODER_RATIOS, RUN_TIME_SECTIONS, SettingsError
from nodes.services import Services
from nodes.settings import NodeSettings

# Field name -> dotted setting, for every run-time knob, in the settings' order.
KNOBS: dict[str, str] = {
    f"{section}_{name}": f"{section}.{name}"
    for section in RUN_TIME_SECTIONS
    for name in NodeSettings.model_fields[section].annotation.model_fields
}
_FIELD_OF = {dotted: name for name, dotted in KNOBS.items()}


def knob_description(dotted: str) -> str:
    """What Studio's form says of a knob: the setting's description and its shipped default."""
    section, key = dotted.split(".")
    setting = NodeSettings.model_fields[section].annotation.model_fields[key]
    # An encoder's own default, as the settings apply it when none is set (ENCODER_RATIOS).
    of_encoders = "".join(f", with embeddings.model {model} {defaults[key]!r}"
                          for model, defaults in ENCODER_RATIOS.items()
                          if section == "retrieval" and defaults.get(key, setting.default) != setting.default)
    return (f"{setting.description} (empty: the settings' value; shipped default "
            f"{setting.default!r}{of_encoders})")


def _knob_field(dotted: str) -> tuple[str, Any, Any]:
    """A knob's field of :data:`Context`: its name, its setting's type or None (the settings'
    value), and its description."""
    section, key = dotted.split(".")
    annotation = NodeSettings.model_fields[section].annotation.model_fields[key].annotation
    described = field(default=None, metadata={"description": knob_description(dotted)})
    return _FIELD_OF[dotted], Optional[annotation], described


# This run's knobs: a field per knob of KNOBS, made from the settings as this module is imported,
# so a setting added to a run-time section is one here too. A dataclass, which LangGraph takes as
# the graph's context schema (Studio's form: the fields in the settings' order, typed, described).
Context = make_dataclass("Context", [_knob_field(dotted) for dotted in KNOBS.values()], kw_only=True,
                         namespace={"__doc__": "This run's knobs (None: the settings' value).", "__module__": __name__})


@dataclass(kw_only=True)
class LocalContext(Context):
    """A run started in this process (the runner, ``goat inspect``, the bench): its knobs and the
    process's services. LangGraph's server cannot pass objects and shows the context as a form,
    so it gets the knobs alone and the graph builds one set of services per server process."""

    services: Services
    # The runner checks a turn's input before it takes the chat (a bad id cannot even name its
    # lock), so the graph need not check it again; no input from the server can set this.
    input_checked: bool = False


def run_context(overrides: Mapping[str, Any] | None = None, services: Services | None = None) -> Context:
    """A context setting these knobs by dotted name (``{"prefetch.timeout": 0.3}``).

    Raises:
        SettingsError: a name that is not a run-time knob (the message lists the knobs).
    """
    overrides = dict(overrides or {})
    # A misspelt name: the closest ones, of the tree the run's settings are (the nodes' part of it
    # when it is not known yet).
    tree = NodeSettings if services is None else type(services.settings)
    tree.check_names(dict.fromkeys(overrides, "the run's overrides"))
    for dotted in overrides:
        if dotted not in _FIELD_OF:
            raise SettingsError(f"setting {dotted} is fixed for the process; a run may set {', '.join(_FIELD_OF)}")
    knobs = {_FIELD_OF[dotted]: value for dotted, value in overrides.items()}
    return Context(**knobs) if services is None else LocalContext(services=services, **knobs)


def run_settings(settings: NodeSettings, context: Context) -> NodeSettings:
    """The settings with the knobs this context sets, validated (cached per distinct run)."""
    return settings.with_overrides({KNOBS[f.name]: value for f in fields(context)
                                    if f.name in KNOBS and (value := getattr(context, f.name)) is not None})


def resolve(runtime: Runtime[Context] | None) -> tuple[Services, NodeSettings]:
    """The services and the effective settings (with this run's knobs) for a node."""
    context = runtime.context if runtime is not None and runtime.context is not None else Context()
    if isinstance(context, Mapping):  # the Studio server may hand the context over as JSON
        if unknown := sorted(set(context) - {f.name for f in fields(Context)}):
            raise SettingsError(f"unknown context field(s) {', '.join(unknown)}; the knobs are {', '.join(KNOBS)}")
        context = Context(**context)
    services = context.services if isinstance(context, LocalContext) else Services.for_server()
    return services, run_settings(services.settings, context)


def turn_time(state: dict) -> float:
    """The instant the turn happens at (unix seconds); callers pass ``now`` to keep nodes consistent."""
    return float(state.get("now") or time.time())
