"""The documentation holds together: the README stays a short guide, every relative link and anchor
in it and in docs/ resolves, docs/settings.md is what the settings' code generates, and the figures
the README shows are docs/benchmarks.md's. No network: only files of the repository are read."""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
DOCUMENTS = [README, *PAGES]
BENCH_LOG = ROOT / "docs" / "bench-log.md"
REGENERATE = "run `make docs` (.venv/bin/python scripts/docs.py) and commit what it writes"

_FENCE = re.compile(r"^(```|~~~)")
_INLINE_CODE = re.compile(r"`+[^`]*`+")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# Seven to forty hex digits holding a digit and a letter: an abbreviated or full commit hash.
_COMMIT = re.compile(r"(?<![\w-])(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![\w-])")


def _docs_script():
    spec = importlib.util.spec_from_file_location("goat_docs_script", ROOT / "scripts" / "docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prose(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without markup, lower case, punctuation dropped
    (letters, digits, spaces, hyphens and underscores stay), spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, line in _prose(path):
        if match := _HEADING.match(line):
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link and image outside code."""
    return [(number, target) for number, line in _prose(path)
            for target in _LINK.findall(_INLINE_CODE.sub("", line))]


def test_slugs_are_githubs() -> None:
    assert slug("GOAT — a LangGraph chat agent with proactive memory") == \
        "goat--a-langgraph-chat-agent-with-proactive-memory"
    assert slug("`goat chat`") == "goat-chat"
    assert slug("Hybrid recall, judged against the chat's background") == \
        "hybrid-recall-judged-against-the-chats-background"
    assert slug("GOAT's memory as a LangGraph Store") == "goats-memory-as-a-langgraph-store"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    broken = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:: not checked here
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"line {number}: {target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"line {number}: {target}: {linked.name} has no heading #{anchor}")
    assert not broken, f"{path.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_every_page_of_docs_is_linked_from_the_readme() -> None:
    linked = {(README.parent / target.partition("#")[0]).resolve() for _, target in links(README)}
    assert [page.name for page in PAGES if page.resolve() not in linked] == []


def test_the_readme_is_a_short_guide() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 350, f"README.md has {len(lines)} lines: details go to a page of docs/"
    long = [number for number, line in enumerate(lines, 1) if len(line) > 200]
    assert long == [], f"README.md lines over 200 characters: {long}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_docs_say_what_is_true_now(path: Path) -> None:
    """No commit hash (the history is git's; the bench log alone names the commits it compares),
    and no reference to a spec outside the repository."""
    text = path.read_text(encoding="utf-8")
    if path != BENCH_LOG:
        assert _COMMIT.findall(text) == [], f"{path.name}: commit hashes belong in git log or docs/bench-log.md"
    assert "SPEC" not in text, f"{path.name}: say what the spec meant instead of citing it"


def test_settings_page_is_generated_from_the_settings() -> None:
    wanted = _docs_script().settings_page()
    assert (ROOT / "docs" / "settings.md").read_text(encoding="utf-8") == wanted, \
        f"docs/settings.md differs from the settings tree (graph/settings.py): {REGENERATE}"


def test_every_setting_is_on_the_settings_page() -> None:
    from pydantic import BaseModel

    from graph.settings import Settings

    def names(model: type[BaseModel], prefix: str = "") -> list[str]:
        found = []
        for name, field in model.model_fields.items():
            kind = field.annotation
            found += (names(kind, f"{prefix}{name}.") if isinstance(kind, type) and issubclass(kind, BaseModel)
                      else [prefix + name])
        return found

    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert [name for name in names(Settings) if f"| `{name}` |" not in page] == []


def test_the_readme_shows_the_benchmarks_figures() -> None:
    script = _docs_script()
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    readme = README.read_text(encoding="utf-8")
    assert script.figures_table(benchmarks).count("\n") >= 3  # a header, its rule, and figures
    assert script.readme_with_figures(readme, benchmarks) == readme, \
        f"README.md's figures differ from docs/benchmarks.md's: {REGENERATE}"


def test_the_link_checker_sees_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## A part\n", encoding="utf-8")
    page.write_text("# Page\n\n[ok](other.md#a-part) [gone](missing.md) [no part](other.md#b)\n"
                    "`[code](missing.md)`\n```\n[fenced](missing.md)\n```\n", encoding="utf-8")
    assert [target for _, target in links(page)] == ["other.md#a-part", "missing.md", "other.md#b"]
    assert anchors(tmp_path / "other.md") == {"other", "a-part"}
