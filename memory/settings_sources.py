"""Where settings come from and how their dotted names are read: the ``goat.toml`` file, the
environment's variables (``GOAT_SECTION__KEY`` and the short aliases of ``ENV_ALIASES``), names
checked against the settings' model, and validation whose errors name the offending key."""

from __future__ import annotations

import difflib
import os
import tomllib
from functools import cache
from pathlib import Path
from typing import Any, Mapping, TypeVar, get_origin

from pydantic import BaseModel, ValidationError

DEFAULT_CONFIG_FILE = "goat.toml"

# Well-known variables that do not follow the GOAT_SECTION__KEY pattern.
ENV_ALIASES: dict[str, str] = {
    "GOAT_DATA_DIR": "data_dir",
    "GOAT_REDIS_URL": "redis.url",
    "GOAT_CHROMA_URL": "chroma.url",
    "GOAT_LETTA_URL": "letta.url",
    "GOAT_LETTA_TOKEN": "letta.token",
    "GOAT_MODEL": "llm.model",
    "OPENAI_API_KEY": "llm.api_key",
    "OPENAI_BASE_URL": "llm.base_url",
    "TELEGRAM_BOT_TOKEN": "telegram.token",
    "GOAT_MCP_TOKEN": "mcp.token",
    "GOAT_TELEGRAM_API_URL": "telegram.api_url",
    "GOAT_ALLOWED_USERS": "telegram.allowed_users",
    "GOAT_TELEGRAM_WEBHOOK_SECRET": "telegram.webhook_secret",
    "GOAT_SERVER_TOKENS": "server.tokens",
}

Model = TypeVar("Model", bound=BaseModel)
Value = TypeVar("Value")

# Settings renamed (docs/operations.md, upgrades): a file, a variable or a run giving the old name
# sets the new one, so that an upgrade changes nothing it was given.
RENAMED: dict[str, str] = {
    "retrieval.neighbour_weight": "retrieval.beside_weight",
    "retrieval.meaning_first_words_weight": "retrieval.meaning_first_lexical_weight",
}


class SettingsError(ValueError):
    """A setting is malformed; the message names the key and where it came from. ``keys``: the
    dotted names of the values refused (none when the file cannot be read or a name is unknown)."""

    def __init__(self, message: str, keys: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.keys = keys


@cache
def _setting_types(model: type[BaseModel]) -> dict[str, Any]:
    """Every section's and every setting's dotted name in ``model`` -> its type."""
    names: dict[str, Any] = {}

    def add(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            names[prefix + name] = field.annotation
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                add(field.annotation, f"{prefix}{name}.")

    add(model, "")
    return names


def _known(dotted: str, types: Mapping[str, Any]) -> bool:
    """A section, a setting, or an entry of a mapping setting (``server.tokens.alice``)."""
    head = dotted
    while head not in types:
        head, dot, _ = head.rpartition(".")
        if not dot:
            return False
    return head == dotted or get_origin(types[head]) is dict


def _unknown(dotted: str, origin: str, types: Mapping[str, Any]) -> str:
    """The error for a name no setting has, with the closest names."""
    # A section only for a one-word name: "prefetch.timeot" means a setting, not the section.
    alike = [name for name in types if "." in dotted or "." not in name]
    closest = difflib.get_close_matches(dotted, alike, n=3, cutoff=0.8)
    if closest:
        hint = f"did you mean {', '.join(closest[:-1]) + ' or ' if closest[1:] else ''}{closest[-1]}?"
    else:  # nothing alike: what the deepest section it names holds, or the top level
        section = next((s for s in _prefixes(dotted) if s in types), "")
        members = [name for name in types if name.rpartition(".")[0] == section]
        hint = f"{section or 'the top level'} holds {', '.join(members)}"
    return f"unknown setting {dotted} (from {origin}); {hint}"


def _prefixes(dotted: str) -> list[str]:
    """``a.b.c`` -> ``a.b``, ``a``: the sections a name lies in, deepest first."""
    parts = dotted.split(".")
    return [".".join(parts[:n]) for n in range(len(parts) - 1, 0, -1)]


def refuse_unknown_names(model: type[BaseModel], origins: Mapping[str, str]) -> None:
    """Refuse names no setting of ``model`` has (dotted name -> where it came from), every one at once."""
    types = _setting_types(model)
    if unknown := [_unknown(key, origin, types) for key, origin in origins.items() if not _known(key, types)]:
        raise SettingsError("; ".join(unknown))


def current_names(given: Mapping[str, Value]) -> dict[str, Value]:
    """``given`` (dotted name -> anything) with each renamed setting under its current name."""
    return {RENAMED.get(dotted, dotted): value for dotted, value in given.items()}


def _renamed_in_file(data: dict[str, Any]) -> None:
    """Move each renamed setting a file gives to its current name."""
    for old, new in RENAMED.items():
        section, _, name = old.rpartition(".")
        holder = data.get(section)
        if isinstance(holder, dict) and name in holder:
            holder.setdefault(new.rpartition(".")[2], holder.pop(name))


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``dotted``'s value in ``data``, making the sections on its way."""
    *sections, key = dotted.split(".")
    node = data
    for section in sections:
        child = node.setdefault(section, {})
        if not isinstance(child, dict):
            raise SettingsError(f"invalid setting {dotted}: {section} is not a section")
        node = child
    node[key] = value


def _dotted_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        keys += _dotted_keys(value, dotted + ".") if isinstance(value, dict) else [dotted]
    return keys


def validated(model: type[Model], data: dict[str, Any], origins: Mapping[str, str],
              in_force: Mapping[str, Any] | None = None) -> Model:
    """``data`` as ``model``, or a :class:`SettingsError` naming each value refused, where it
    came from and, for a value that would override one, the value ``in_force`` meanwhile."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems, keys = [], []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            # The variable a key came from, also for an item of it (telegram.allowed_users.1).
            origin = next((v for k, v in origins.items()
                           if k == key or k.startswith(key + ".") or key.startswith(k + ".")), None)
            where = f" (from {origin})" if origin else ""
            kept = f" (in force: {in_force[key]!r})" if in_force and key in in_force else ""
            problems.append(f"invalid setting {key}{where}: {_said(error)}{kept}")
            keys.append(key)
        raise SettingsError("; ".join(problems), tuple(keys)) from None


def _said(error: Any) -> str:
    """What a refused value is told, in the user's terms: without pydantic's "Value error, " before
    our own validators' words, or its Python type names."""
    if error["type"] == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "path_type":
        return "expected a path, as text"
    return str(error["msg"])


def _environment_overrides(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """dotted key -> (value, variable name)."""
    found: dict[str, tuple[str, str]] = {}
    for name, value in environ.items():
        if name in ENV_ALIASES:
            found[ENV_ALIASES[name]] = (value, name)
        elif name.startswith("GOAT_") and "__" in name:
            dotted = name[len("GOAT_") :].lower().replace("__", ".")
            found[dotted] = (value, name)
    return found


def drop_dotted(data: dict[str, Any], dotted: str) -> bool:
    """Remove ``dotted``'s value from ``data``, or the deepest section or setting holding it (for
    an item of a list: the list). Returns whether there was one."""
    holder, name, node = None, "", data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            break
        holder, name, node = node, part, node[part]
    if holder is None:
        return False
    del holder[name]
    return True


def read_sources(model: type[BaseModel], path: str | Path | None,
                 environ: Mapping[str, str] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings given by the file and the environment (dotted key -> value), and where each
    came from; names no setting of ``model`` has are refused."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}
    explicit = path or environ.get("GOAT_CONFIG")
    config_file = Path(explicit) if explicit else Path(DEFAULT_CONFIG_FILE)
    if explicit or config_file.exists():
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
            _renamed_in_file(data)
            origins.update((key, str(config_file)) for key in _dotted_keys(data))
        except FileNotFoundError:
            raise SettingsError(f"config file {config_file} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"config file {config_file} is not valid TOML: {exc}") from None
        except RecursionError:
            raise SettingsError(f"config file {config_file} is nested too deeply to read") from None
    variables = {dotted: (value, variable) for dotted, (value, variable)
                 in current_names(_environment_overrides(environ)).items()
                 if value != ""}  # an empty variable means "not set", as shells usually intend
    refuse_unknown_names(model, {**origins, **{dotted: variable for dotted, (_, variable) in variables.items()}})
    for dotted, (value, variable) in variables.items():
        set_dotted(data, dotted, value)
        origins[dotted] = variable
    return data, origins
