"""The run-time context (nodes/context.py) is made from the settings, a field per knob a run may
set: these check that it is, as LangGraph and Studio read it."""

from __future__ import annotations

from dataclasses import fields
from typing import Optional, get_type_hints

from graph.settings import Settings
from nodes.context import KNOBS, Context, knob_description


def test_every_run_time_setting_has_a_context_field_and_every_field_names_one():
    named = [field.name for field in fields(Context)]
    assert set(named) == set(KNOBS), (f"run-time settings with no Context field: {sorted(set(KNOBS) - set(named))}; "
                                      f"Context fields naming no setting: {sorted(set(named) - set(KNOBS))}")
    assert named == list(KNOBS), "Context's fields are in the settings' order (Studio's form shows them so)"


def test_each_context_field_is_typed_and_described_as_its_setting():
    hints = get_type_hints(Context)
    for field in fields(Context):
        section, key = KNOBS[field.name].split(".")
        setting = Settings.model_fields[section].annotation.model_fields[key]
        assert hints[field.name] == Optional[setting.annotation], field.name
        assert field.default is None, field.name  # empty: the settings' value
        assert field.metadata["description"] == knob_description(KNOBS[field.name]), field.name


def test_studios_form_lists_every_knob_typed_and_described():
    """What LangGraph's server shows as the context's form: the graph's context schema."""
    from graph.graph import graph

    form = graph.get_context_jsonschema()
    assert list(form["properties"]) == list(KNOBS)
    for name, dotted in KNOBS.items():
        assert form["properties"][name]["description"] == knob_description(dotted), name
        assert form["properties"][name]["default"] is None, name
    assert form["properties"]["memory_scope"]["anyOf"][0]["enum"] == ["chat", "user", "global"]
