"""The packages import one way (bot → bench → graph → nodes → memory, with bench.support below the
rest of bench): the import-linter contracts in pyproject.toml, checked on every run of the suite;
and the product's tests import no benchmark code, but bench.support."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_packages_import_one_way():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert f"{len(contracts)} kept, 0 broken" in done.stdout


def test_code_outside_memory_enters_it_through_few_doors():
    """The façade, the public types (settings, errors, turns), the one redaction of URLs, what a
    failed write on a full disk tells, and the rooms' packages: at most ten of memory's modules are
    imported from outside it, lazy imports included."""
    import grimp

    graph = grimp.build_graph("bench", "bot", "graph", "nodes", "memory", cache_dir=None)
    outside = {module for package in ("bench", "bot", "graph", "nodes")
               for module in graph.find_descendants(package) | {package}}
    doors = {imported for importer in outside for imported in graph.find_modules_directly_imported_by(importer)
             if imported == "memory" or imported.startswith("memory.")}
    assert doors == {"memory.facade", "memory.settings", "memory.errors", "memory.credentials", "memory.disk_failures",
                     "memory.turns", "memory.stores", "memory.encoders", "memory.retrieval", "memory.prompt"}


NAMED_TUPLE_API = {"_asdict", "_fields", "_make", "_replace"}


def _private_names_of_memory() -> set[str]:
    """The private names memory/ defines: its modules' ``_names``, its classes' ``_methods`` and
    the ``self._attributes`` they set."""
    names: set[str] = set()
    for path in (ROOT / "memory").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    # A named tuple's own API is spelt with an underscore and is public.
    return {name for name in names if name.startswith("_") and not name.startswith("__")} - NAMED_TUPLE_API


# Tests that look at what memory keeps, deliberately, past its doors: the stores' own contents
# (Chroma's entries and vectors, the word index, the journal, the chat leases) or a part run alone
# (the archiver, the search). Every other test reaches memory as the code outside it does.
TESTS_OF_MEMORYS_INSIDES = {
    "test_bad_input.py", "test_chat.py", "test_cluster.py", "test_durability.py", "test_e5.py",
    "test_embedded_redis.py", "test_embeddings.py", "test_episodic.py", "test_erasure.py", "test_graph.py",
    "test_import_batches.py", "test_import_hardening.py", "test_isolation.py", "test_langchain_retriever.py",
    "test_multilingual.py", "test_open_chats.py", "test_privacy.py", "test_reembed.py",
    "test_retrieval.py", "test_studio.py", "test_telegram.py", "test_tools.py", "test_words.py", "test_workers.py",
}


def _private_names_reached(path: Path, private: set[str]) -> list[str]:
    """Where the module at ``path`` imports a private name from memory, or reads an attribute of
    that name off anything but its own ``self``."""
    reached = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("memory"):
            reached += [f"{path.relative_to(ROOT)}: import {a.name}" for a in node.names if a.name in private]
        elif (isinstance(node, ast.Attribute) and node.attr in private
              and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            reached.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return reached


def test_code_outside_memory_reaches_no_private_name_of_it():
    """What memory keeps to itself (its stores, its search, its archiver, its helpers) is
    reached through its doors only: no import of a private name from memory, and no attribute of
    that name read off anything but the code's own ``self``. The tests too, but those that look
    at memory's insides on purpose (``TESTS_OF_MEMORYS_INSIDES``)."""
    private = _private_names_of_memory()
    code = [path for package in ("bench", "bot", "graph", "nodes", "notebooks")
            for path in (ROOT / package).rglob("*.py")]
    tests = [path for path in (ROOT / "tests").rglob("*.py") if path.name not in TESTS_OF_MEMORYS_INSIDES]
    assert [where for path in code + tests for where in _private_names_reached(path, private)] == []
    # A test taken off its insides is taken off the list too.
    assert {name for name in TESTS_OF_MEMORYS_INSIDES
            if not _private_names_reached(ROOT / "tests" / name, private)} == set()


# Tests whose subject is the benchmarks: only they import bench (but bench.support, which every test may).
TESTS_OF_THE_BENCHMARKS = {"test_bench.py", "test_notebooks.py"}


def _bench_imports(path: Path) -> list[str]:
    """The modules of bench but bench.support the module at ``path`` imports, lazy imports included."""
    imported = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            # ``from bench import x`` imports bench.x (or a name of bench's own __init__).
            imported += ([f"bench.{alias.name}" for alias in node.names] if node.module == "bench"
                         else [node.module or ""])
    return [name for name in imported if (name == "bench" or name.startswith("bench."))
            and name != "bench.support" and not name.startswith("bench.support.")]


def test_the_products_tests_import_no_benchmark_code():
    """What the tests share with the benchmarks (the LoCoMo reader, the bilingual chat, servers
    and exports) lives in bench/support/, which imports no benchmark either (a contract), so that a
    change to a benchmark cannot break a test of the product."""
    tests = [path for path in (ROOT / "tests").rglob("*.py") if path.name not in TESTS_OF_THE_BENCHMARKS]
    assert {str(path.relative_to(ROOT)): _bench_imports(path) for path in tests if _bench_imports(path)} == {}


def test_no_bare_list_of_dicts_in_the_products_signatures():
    """What crosses a seam is typed (a message is a ``Message``, an entry found a ``Hit``…): no
    function of the product takes or returns a ``list[dict]`` that says nothing of its fields."""
    bare = re.compile(r"list\[dict\](?!\[)")
    found = []
    for package in ("bot", "graph", "memory", "nodes"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    signature = [arg.annotation for arg in (*node.args.posonlyargs, *node.args.args,
                                                            *node.args.kwonlyargs) if arg.annotation]
                    found += [f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
                              for annotation in (*signature, node.returns) if annotation is not None
                              and bare.search(ast.unparse(annotation))]
    assert found == []


def test_memory_imports_no_module_that_imports_it_back():
    """No import circle among memory's modules (TYPE_CHECKING imports included): each module
    can be read, and tested, from what it imports."""
    import grimp

    graph = grimp.build_graph("memory", cache_dir=None)
    circles = {tuple(sorted((module, imported))) for module in graph.modules
               for imported in graph.find_modules_directly_imported_by(module)
               if graph.chain_exists(importer=imported, imported=module)}
    assert circles == set()


def test_memorys_door_holds_a_turns_verbs_and_hands_out_no_client():
    """``Memory`` keeps what a turn calls and the lifecycle, twelve verbs at most (its methods and
    properties); one user's memory in one chat (``Memory.scope``), the operator's jobs and a
    chat's records have doors of their own (``MemoryScope``, ``Memory.admin``,
    ``Memory.entries``), and none hands out memory's Redis client: whoever keeps keys beside
    memory's opens a client of their own."""
    from memory.facade import ChatEntries, Memory, MemoryAdmin, MemoryScope

    verbs = [name for name, value in vars(Memory).items()
             if (callable(value) or isinstance(value, property)) and not name.startswith("_")]
    assert len(verbs) <= 12, verbs
    for door in (Memory, MemoryAdmin, ChatEntries, MemoryScope):
        returns = [f"{door.__name__}.{name}" for name, value in vars(door).items()
                   if "Redis" in str(getattr(value, "__annotations__", {}).get("return", ""))]
        assert returns == []


def test_the_product_never_calls_the_measurement_hooks():
    """The tests' and benchmarks' hooks on memory (``measurement_hooks``: the plain vector search,
    the archive settled, the caches forgotten) are no verb of the product: no module of bot/,
    graph/ or nodes/ names them."""
    naming = [f"{path.relative_to(ROOT)}:{node.lineno}" for package in ("bot", "graph", "nodes")
              for path in sorted((ROOT / package).rglob("*.py")) for node in ast.walk(ast.parse(path.read_text()))
              if (isinstance(node, ast.Name) and node.id in ("measurement_hooks", "MeasurementHooks"))
              or (isinstance(node, ast.alias) and node.name in ("measurement_hooks", "MeasurementHooks"))
              or (isinstance(node, ast.Attribute) and node.attr == "_measurement_hooks")]
    assert naming == []


def test_every_face_tells_memorys_errors_apart_through_replies_alone():
    """One mapping of failures serves every face (graph/replies.py): no module of bot/ catches one
    of memory's errors itself, by an except clause or an isinstance check; it names replies' kinds
    (MEMORY_UNREACHABLE, CHAT_OF_OTHERS…) instead."""
    errors = {node.name for node in ast.walk(ast.parse((ROOT / "memory" / "errors.py").read_text()))
              if isinstance(node, ast.ClassDef)}

    def named(node: ast.AST | None) -> set[str]:
        return {each.id if isinstance(each, ast.Name) else each.attr for each in ast.walk(node)
                if isinstance(each, (ast.Name, ast.Attribute))} if node is not None else set()

    caught = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler):
                checked = named(node.type)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
                checked = named(node.args[1]) if len(node.args) == 2 else set()
            else:
                continue
            caught += [f"{path.relative_to(ROOT)}:{node.lineno} catches {name}" for name in sorted(checked & errors)]
    assert caught == []


def test_nothing_outside_the_tests_imports_them():
    """The product, bench/, bench/support/ and the notebooks stand on their own: none imports tests/
    (what the benchmarks share with the tests is bench/support/'s, which the tests import)."""
    importing = []
    for package in ("bench", "bot", "graph", "nodes", "memory", "notebooks", "scripts"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else
                         [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
                importing += [f"{path.relative_to(ROOT)} imports {name}" for name in names
                              if name == "tests" or name.startswith("tests.")]
    assert importing == []


# Longer than docs/architecture.md's limit on purpose, as it says: one job each.
LONGER_ON_PURPOSE = {"graph/checkpoint/saver.py", "bench/support/fakes/openai_server.py"}


def test_no_module_or_function_is_longer_than_docs_architecture_says():
    """docs/architecture.md's size claims, as it states them: no module outside the tests over
    its lines but the checkpoint saver and the model's fake, and no function over its lines."""
    claim = re.search(r"No module outside the tests is over (\d+) lines but the checkpoint saver.*?"
                      r"bench/support/fakes/openai_server.py.*?and no function over (\d+)",
                      (ROOT / "docs" / "architecture.md").read_text(), re.S)
    assert claim, "docs/architecture.md no longer states its size limits"
    module_lines, function_lines = map(int, claim.groups())
    over = set()
    for package in ("bench", "bot", "graph", "nodes", "memory", "notebooks", "scripts"):
        for path in (ROOT / package).rglob("*.py"):
            name, text = str(path.relative_to(ROOT)), path.read_text()
            if len(text.splitlines()) > module_lines and name not in LONGER_ON_PURPOSE:
                over.add(name)
            over |= {f"{name}:{node.name}" for node in ast.walk(ast.parse(text))
                     if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and node.end_lineno - node.lineno + 1 > function_lines}
    assert over == set()


def test_no_verb_is_on_two_of_memorys_doors():
    """Each verb has one door (the chat's start afresh is Memory's; a person's export, the
    admin's; a fact forgotten, the person's scope's, which the Store's delete calls too), but
    closing, which each door does of what it holds."""
    from memory.facade import ChatEntries, HeardConversation, Memory, MemoryAdmin, MemoryScope

    doors = (Memory, MemoryScope, MemoryAdmin, ChatEntries, HeardConversation)
    verbs = {door: {name for name, value in vars(door).items()
                    if not name.startswith("_") and (callable(value) or isinstance(value, property))} for door in doors}
    shared = {verb for door in doors for other in doors if door is not other for verb in verbs[door] & verbs[other]}
    assert shared == {"aclose"}
