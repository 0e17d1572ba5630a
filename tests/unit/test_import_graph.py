"""The import rules between top-level packages (docs/ARCHITECTURE.md, "Import rules").

Layers, bottom to top:

- `kernel`: imports only itself and third-party packages (no context, no entry point).
- contexts `ingest`, `inventory`, `search`, `commerce`, `read_models`, `analytics`: import only
  themselves, the kernel and third-party packages; never each other, never `emporium`.
- `infra` (the local stack, bootstrap): imports only the kernel.
- entry points `emporium` (app, CLI, composition root) and `loadtest` sit on top: they may import
  everything below them; nothing below imports them, and `emporium` never imports `loadtest`.

Every import counts, wherever it is written: at module level, inside a function, under
`if TYPE_CHECKING:`; a deferred import is still a dependency. Only the source text is read (`ast`).
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]

KERNEL = "kernel"
CONTEXTS = frozenset({"ingest", "inventory", "search", "commerce", "read_models", "analytics"})
INFRA = "infra"
ENTRY_POINTS = frozenset({"emporium", "loadtest"})
PACKAGES = frozenset({KERNEL, INFRA, *CONTEXTS, *ENTRY_POINTS})

ALLOWED: dict[str, frozenset[str]] = {
    KERNEL: frozenset(),
    **{context: frozenset({KERNEL}) for context in CONTEXTS},
    INFRA: frozenset({KERNEL}),
    "emporium": frozenset({KERNEL, INFRA, *CONTEXTS}),
    "loadtest": frozenset({KERNEL, INFRA, *CONTEXTS, "emporium"}),
}

# Known edges that break a rule today, each to be removed when the change that fixes it is merged.
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()


class Import(NamedTuple):
    """One import statement of a source file, resolved to the top-level package it reaches."""

    source: str  # path relative to the repository root
    line: int
    importer: str  # top-level package of the importing file
    imported: str  # top-level package of the imported module


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ImportFrom names, resolving `from . import x` against the file's package."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imported_modules(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):  # walks function bodies too
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, _absolute(node, module, is_package)


def _source_files() -> Iterator[Path]:
    for package in sorted(PACKAGES):
        yield from sorted((ROOT / package).rglob("*.py"))


def _imports() -> list[Import]:
    found: list[Import] = []
    for path in _source_files():
        module = _module_name(path)
        importer = module.split(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _imported_modules(tree, module, path.name == "__init__.py"):
            imported = name.split(".")[0]
            if imported in PACKAGES and imported != importer:
                found.append(Import(str(path.relative_to(ROOT)), line, importer, imported))
    return found


IMPORTS = _imports()


def _violations(imports: list[Import]) -> list[Import]:
    return [
        edge
        for edge in imports
        if edge.imported not in ALLOWED[edge.importer]
        and (edge.source, edge.imported) not in KNOWN_VIOLATIONS
    ]


def _describe(edges: list[Import]) -> str:
    return "\n".join(f"{e.source}:{e.line}: {e.importer} imports {e.imported}" for e in edges)


def test_every_package_is_scanned() -> None:
    """A renamed or new top-level package must be placed in a layer, not silently skipped."""
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert on_disk == PACKAGES, f"place these packages in a layer: {sorted(on_disk ^ PACKAGES)}"
    assert IMPORTS, "no cross-package import found: the scan is broken"


def test_no_cycle_between_top_level_packages() -> None:
    graph: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for edge in IMPORTS:
        graph[edge.importer].add(edge.imported)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        cycle = error.args[1]  # each node is imported by the next one
        pairs = list(zip(cycle[1:], cycle, strict=False))
        first_of_each = [next(e for e in IMPORTS if (e.importer, e.imported) == pair) for pair in pairs]
        pytest.fail(f"import cycle {' -> '.join(reversed(cycle))}, e.g.:\n{_describe(first_of_each)}")


def test_kernel_imports_no_context_and_no_entry_point() -> None:
    offending = [e for e in _violations(IMPORTS) if e.importer == KERNEL]
    assert not offending, "the kernel must not depend on what builds on it:\n" + _describe(offending)


def test_contexts_import_only_the_kernel() -> None:
    """Contexts talk through events on the log, never through each other's modules."""
    offending = [e for e in _violations(IMPORTS) if e.importer in CONTEXTS]
    assert not offending, "a context may import only the kernel:\n" + _describe(offending)


def test_no_package_imports_an_entry_point_from_below() -> None:
    offending = [e for e in _violations(IMPORTS) if e.imported in ENTRY_POINTS]
    assert not offending, "entry points sit on top; nothing below imports them:\n" + _describe(offending)


def test_every_import_follows_the_layers() -> None:
    offending = _violations(IMPORTS)
    assert not offending, _describe(offending)


def test_known_violations_are_still_real() -> None:
    """An exemption whose edge is gone must be deleted, so it cannot hide a new one later."""
    present = {(e.source, e.imported) for e in IMPORTS}
    stale = KNOWN_VIOLATIONS - present
    assert not stale, f"remove these entries from KNOWN_VIOLATIONS: {sorted(stale)}"


@pytest.mark.parametrize(
    ("module", "is_package", "statement", "expected"),
    [
        ("search.tantivy", True, "from .query import build", "search.tantivy.query"),
        ("search.tantivy.query", False, "from . import fields", "search.tantivy"),
        ("search.tantivy.query", False, "from ..port import Sort", "search.port"),
        ("kernel.eventlog.sqlite", False, "from kernel.eventlog.port import Record", "kernel.eventlog.port"),
    ],
)
def test_relative_imports_resolve_against_the_package(
    module: str, is_package: bool, statement: str, expected: str
) -> None:
    node = ast.parse(statement).body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _absolute(node, module, is_package) == expected


def test_imports_inside_functions_count() -> None:
    source = "def f() -> None:\n    import inventory.domain\n    from search import port\n"
    names = [name for _, name in _imported_modules(ast.parse(source), "kernel.x", False)]
    assert names == ["inventory.domain", "search"]
