"""Tool plugins: ``*.py`` files in a folder, each with a ``tools()`` function returning LangChain tools.

The folder is rescanned on request (by the budget node, once per turn): a file whose
modification time or size changed is loaded again, a deleted file's tools go, files
named ``_*.py`` are helpers and skipped. A file that fails to load (a syntax error, an
exception, ``tools()`` returning something else than tools) keeps the tools of its last
good version; its failure is logged once per version of the file, never raised into a turn.
"""

from __future__ import annotations

import logging
import sys
import threading
import types
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from langchain_core.tools import BaseTool

PLUGIN_FUNCTION = "tools"

log = logging.getLogger(__name__)

Stamp = tuple[int, int]  # (modification time in ns, size): a file's version


@dataclass(frozen=True)
class _Loaded:
    stamp: Stamp
    tools: tuple[BaseTool, ...]


class PluginRegistry:
    def __init__(self, folder: Path | None, reserved: Iterable[str] = ()) -> None:
        """``reserved``: tool names plugins may not take (the memory tools)."""
        self.folder = folder
        self._reserved = frozenset(reserved)
        self._loaded: dict[Path, _Loaded] = {}
        self._failed: dict[Path, Stamp] = {}  # the version of a file whose failure was logged
        self._tools: tuple[BaseTool, ...] = ()
        self._lock = threading.Lock()

    def has_folder(self) -> bool:
        """Whether the plugins folder exists (one stat)."""
        return self.folder is not None and self.folder.is_dir()

    def tools(self) -> list[BaseTool]:
        """The plugins' tools as last loaded (file-name order), without rescanning."""
        return list(self._tools)

    def refresh(self) -> list[BaseTool]:
        """Rescan the folder, load what changed, return the tools. Blocking where the folder exists
        (it may load files): run it in a thread then."""
        with self._lock:
            stamps = _stamps(self.folder)
            changed = False
            for path in set(self._loaded) - set(stamps):
                del self._loaded[path]
                changed = True
                log.info("plugin %s was removed; its tools are gone", path)
            for path in set(self._failed) - set(stamps):
                del self._failed[path]
            for path, stamp in stamps.items():
                loaded = self._loaded.get(path)
                if stamp != self._failed.get(path) and (loaded is None or loaded.stamp != stamp):
                    changed |= self._load(path, stamp)
            if changed:
                self._tools = self._merged()
            return list(self._tools)

    def _load(self, path: Path, stamp: Stamp) -> bool:
        """Load one file's version; False (and logged) when it fails."""
        try:
            tools = _import_tools(path)
        except (Exception, SystemExit) as exc:  # whatever a plugin does, the turn goes on
            self._failed[path] = stamp
            kept = "keeps its last good tools" if path in self._loaded else "offers no tools"
            log.warning("plugin %s failed to load (%s: %s); it %s until the file changes",
                        path, type(exc).__name__, exc, kept)
            return False
        self._failed.pop(path, None)
        self._loaded[path] = _Loaded(stamp, tuple(tools))
        log.info("plugin %s loaded: %s", path, ", ".join(t.name for t in tools) or "no tools")
        return True

    def _merged(self) -> tuple[BaseTool, ...]:
        """Every loaded file's tools, a name taken once: by a memory tool, else by the first file."""
        by_name: dict[str, BaseTool] = {}
        for path in sorted(self._loaded):
            for plugin_tool in self._loaded[path].tools:
                if plugin_tool.name in self._reserved or plugin_tool.name in by_name:
                    log.warning("plugin %s: a tool named %s exists already; this one is ignored",
                                path, plugin_tool.name)
                    continue
                by_name[plugin_tool.name] = plugin_tool
        return tuple(by_name.values())


def _stamps(folder: Path | None) -> dict[Path, Stamp]:
    if folder is None or not folder.is_dir():
        return {}
    stamps = {}
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # deleted while scanning
            continue
        stamps[path] = (stat.st_mtime_ns, stat.st_size)
    return stamps


def _import_tools(path: Path) -> list[BaseTool]:
    # Compiled from the source, not imported: the import system's bytecode cache is keyed
    # by whole seconds and would serve a stale version of a file rewritten within one.
    code = compile(path.read_bytes(), str(path), "exec")
    name = f"goat_plugin_{path.stem}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    previous = sys.modules.get(name)
    sys.modules[name] = module  # dataclasses and pydantic models look their module up there
    try:
        exec(code, module.__dict__)
        factory = getattr(module, PLUGIN_FUNCTION, None)
        if not callable(factory):
            raise TypeError(f"it has no {PLUGIN_FUNCTION}() function")
        tools = factory()
        if not isinstance(tools, (list, tuple)) or not all(isinstance(t, BaseTool) for t in tools):
            raise TypeError(f"{PLUGIN_FUNCTION}() must return a list of LangChain tools, got {tools!r:.200}")
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    return list(tools)
