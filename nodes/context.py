"""Run-time context of the graph: this run's knobs, and the process's services.

Every setting a run may change is a typed field of its own, named after its dotted name
(``prefetch.timeout`` → ``prefetch_timeout``) and described as the setting is; empty (None)
means the settings' value. Studio renders the fields as a form; ``goat inspect --set``, the
bench and the notebooks set the same fields by dotted name (:func:`run_context`), and the
settings tree validates the values (:func:`run_settings`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from langgraph.runtime import Runtime

from memory.settings import ENCODER_RATIOS, RUN_TIME_SECTIONS, Scope, SettingsError
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


def _knob(dotted: str) -> Any:
    return field(default=None, metadata={"description": knob_description(dotted)})


# One field per knob of KNOBS, named and typed as its setting (tests/test_context.py keeps the two
# lists the same).
@dataclass(kw_only=True)
class Context:
    """This run's knobs (None: the settings' value)."""

    identity_base_prompt: str | None = _knob("identity.base_prompt")

    memory_scope: Scope | None = _knob("memory.scope")
    memory_l2_max_messages: int | None = _knob("memory.l2_max_messages")

    prefetch_timeout: float | None = _knob("prefetch.timeout")
    prefetch_max_results: int | None = _knob("prefetch.max_results")
    prefetch_search_k: int | None = _knob("prefetch.search_k")
    prefetch_timezone: str | None = _knob("prefetch.timezone")

    retrieval_relevance_ratio: float | None = _knob("retrieval.relevance_ratio")
    retrieval_lexical_relevance_ratio: float | None = _knob("retrieval.lexical_relevance_ratio")
    retrieval_long_lexical_relevance_ratio: float | None = _knob("retrieval.long_lexical_relevance_ratio")
    retrieval_meaning_first_relevance_ratio: float | None = _knob("retrieval.meaning_first_relevance_ratio")
    retrieval_meaning_first_words_weight: float | None = _knob("retrieval.meaning_first_words_weight")
    retrieval_context_ratio: float | None = _knob("retrieval.context_ratio")
    retrieval_rrf_k: float | None = _knob("retrieval.rrf_k")
    retrieval_neighbour_weight: float | None = _knob("retrieval.neighbour_weight")
    retrieval_lexical_max_df_share: float | None = _knob("retrieval.lexical_max_df_share")
    retrieval_gap_significance: float | None = _knob("retrieval.gap_significance")
    retrieval_small_result_ceiling: float | None = _knob("retrieval.small_result_ceiling")
    retrieval_temporal_min_results: int | None = _knob("retrieval.temporal_min_results")
    retrieval_weight_similarity: float | None = _knob("retrieval.weight_similarity")
    retrieval_weight_recency: float | None = _knob("retrieval.weight_recency")
    retrieval_weight_popularity: float | None = _knob("retrieval.weight_popularity")
    retrieval_min_score_share: float | None = _knob("retrieval.min_score_share")
    retrieval_beside_best: int | None = _knob("retrieval.beside_best")
    retrieval_whole_message_chars: int | None = _knob("retrieval.whole_message_chars")
    retrieval_excerpt_chars: int | None = _knob("retrieval.excerpt_chars")
    retrieval_recency_window_days: float | None = _knob("retrieval.recency_window_days")
    retrieval_popularity_norm: float | None = _knob("retrieval.popularity_norm")

    aits_base: int | None = _knob("aits.base")
    aits_confidence_multiplier: int | None = _knob("aits.confidence_multiplier")
    aits_complexity_bonus: int | None = _knob("aits.complexity_bonus")
    aits_hard_cap: int | None = _knob("aits.hard_cap")

    budget_l3_min_guarantee_tokens: int | None = _knob("budget.l3_min_guarantee_tokens")
    budget_l2_floor_tokens: int | None = _knob("budget.l2_floor_tokens")
    budget_l1_facts_max_tokens: int | None = _knob("budget.l1_facts_max_tokens")


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
