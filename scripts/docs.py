"""The generated parts of the documentation, made from what they describe so that they cannot drift:

- ``docs/settings.md``, every setting, from the settings tree (``graph/settings.py`` composes it of
  its own sections and those of ``nodes/settings.py`` and ``memory/settings.py``: each setting's
  name, default, bounds, variables and description);
- the figures table at the top of ``README.md``, copied from ``docs/benchmarks.md`` (the one place
  the figures are changed).

``make docs`` (``.venv/bin/python scripts/docs.py``) writes both; ``--check`` only says whether
they differ. ``tests/test_docs.py`` fails when they do.
"""

from __future__ import annotations

import argparse
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from graph.settings import Settings  # noqa: E402
from memory.settings import ENCODER_RATIOS, RUN_TIME_SECTIONS  # noqa: E402
from memory.settings_sources import ENV_ALIASES  # noqa: E402

SETTINGS_PAGE = ROOT / "docs" / "settings.md"
BENCHMARKS_PAGE = ROOT / "docs" / "benchmarks.md"
README = ROOT / "README.md"
COMMAND = "make docs"
FIGURES_START, FIGURES_END = "<!-- figures: start -->", "<!-- figures: end -->"

_INTRO = f"""# Settings

<!-- Generated from the settings tree (graph/settings.py) by `{COMMAND}` (scripts/docs.py); do not edit by hand. -->

Defaults < `goat.toml` (or the file `$GOAT_CONFIG` names) < environment < per-run overrides. Every
setting has one dotted name, used the same way everywhere: `[prefetch] timeout = 0.3` in the file,
`GOAT_PREFETCH__TIMEOUT=0.3` in the environment (any setting as `GOAT_<SECTION>__<NAME>`; a few also
have a short variable, listed first), `--set prefetch.timeout=0.3` on `goat inspect`, or a field of
the run context (`prefetch_timeout` in LangGraph Studio's form).

A bad value stops the start with a message naming the setting and where it came from (the
variable, the file, `--set`); a name no setting has is an "unknown setting", with the closest names
(`retrieval.gap_significanse` → did you mean `retrieval.gap_significance`?); a number that is not
finite (`nan`, `inf`) or a boolean given for a number is refused. An empty variable counts as unset.

Only the sections {", ".join(f"`{name}`" for name in RUN_TIME_SECTIONS)} can change per run (`--set`,
the run context, the notebooks); the others are fixed for the process (backends, the model and the
cache are built once).
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _value(value: Any) -> str:
    """A default as a person would write it in goat.toml."""
    if value is None or value == () or value == {}:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"`{value:_}`".replace("_", " ").replace("` ", "`")
    return f"`{value}`"


def _bounds(field: FieldInfo) -> str:
    said = []
    for rule in field.metadata:
        for attribute, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤"), ("min_length", "length ≥")):
            bound = getattr(rule, attribute, None)
            if bound is not None:
                said.append(f"{sign} {bound}")
    if get_origin(field.annotation) is Literal:
        said.append("one of " + ", ".join(f"`{choice}`" for choice in get_args(field.annotation)))
    return "; ".join(said)


def _variables(dotted: str) -> str:
    aliases = [name for name, target in ENV_ALIASES.items() if target == dotted]
    if "." in dotted:
        aliases.append("GOAT_" + dotted.upper().replace(".", "__"))
    return ", ".join(f"`{name}`" for name in aliases)


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, FieldInfo]]:
    return [(prefix + name, field) for name, field in model.model_fields.items()
            if not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel))]


def _table(rows: list[tuple[str, FieldInfo]]) -> list[str]:
    lines = ["| setting | default | variables | what it is |", "|---|---|---|---|"]
    for dotted, field in rows:
        if not field.description:
            raise ValueError(f"setting {dotted} has no description (Field(..., description=...) in its section)")
        bounds = _bounds(field)
        what = field.description + (f" ({bounds})" if bounds else "")
        default = _value(field.get_default(call_default_factory=True))
        lines.append(f"| `{dotted}` | {_cell(default)} | {_variables(dotted)} | {_cell(what)} |")
    return lines


def settings_page() -> str:
    """docs/settings.md as the settings tree describes it now."""
    out = [_INTRO]
    top = _rows(Settings, "")
    if top:
        out += ["## The data folder", "", *_table(top), ""]
    for name, field in Settings.model_fields.items():
        section = field.annotation
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            continue
        out += [f"## {name}", ""]
        doc = (section.__doc__ or "").strip()
        if doc and section.__doc__ is not BaseModel.__doc__ and not doc.startswith(section.__name__ + "("):
            out += [" ".join(doc.replace("``", "`").split()), ""]
        if name in RUN_TIME_SECTIONS:
            out += ["Per run too: `goat inspect --set`, the run context, the notebooks.", ""]
        out += [*_table(_rows(section, name + ".")), ""]
        if name == "retrieval":
            for encoder, ratios in ENCODER_RATIOS.items():
                said = ", ".join(f"`retrieval.{key}` {value:g}" for key, value in ratios.items())
                out += [f"With `embeddings.model = \"{encoder}\"` the defaults are {said} (a value set anywhere "
                        "wins).", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def figures_table(benchmarks: str) -> str:
    """The figures table of docs/benchmarks.md (between its figures markers)."""
    try:
        start = benchmarks.index(FIGURES_START) + len(FIGURES_START)
        return benchmarks[start:benchmarks.index(FIGURES_END, start)].strip("\n")
    except ValueError:
        raise ValueError(f"docs/benchmarks.md has no {FIGURES_START} … {FIGURES_END} block") from None


def readme_with_figures(readme: str, benchmarks: str) -> str:
    """README.md with its figures block replaced by docs/benchmarks.md's."""
    try:
        head, rest = readme.split(FIGURES_START, 1)
        _, tail = rest.split(FIGURES_END, 1)
    except ValueError:
        raise ValueError(f"README.md has no {FIGURES_START} … {FIGURES_END} block") from None
    return f"{head}{FIGURES_START}\n{figures_table(benchmarks)}\n{FIGURES_END}{tail}"


def wanted() -> dict[Path, str]:
    """Each generated file -> what it should hold."""
    return {SETTINGS_PAGE: settings_page(),
            README: readme_with_figures(README.read_text(encoding="utf-8"),
                                        BENCHMARKS_PAGE.read_text(encoding="utf-8"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/settings.md and README.md's figures table.")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file differs")
    args = parser.parse_args(argv)
    texts = wanted()
    stale = [path for path, text in texts.items() if not path.exists() or path.read_text(encoding="utf-8") != text]
    for path in stale:
        if args.check:
            print(f"{path.relative_to(ROOT)} is out of date: run `{COMMAND}`", file=sys.stderr)
        else:
            path.write_text(texts[path], encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
