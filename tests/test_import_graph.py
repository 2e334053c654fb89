"""The project's modules import each other without a cycle.

A cycle makes the outcome depend on which module happens to be imported first (a name is missing
from a module that is still half-initialised), so it is refused here, before it bites at start-up.

What counts is what runs at import time: the imports at module level, also inside ``try``, ``with``,
a class body or an ``if`` (but not an ``if TYPE_CHECKING:`` block, which never runs). An import inside
a function is a deliberate late import and does not count. ``from pkg import name`` where ``name``
is a submodule imports that submodule. A package's own ``__init__`` is a module like any other, but
importing ``a.b.c`` is an edge to ``a.b.c`` only: Python runs the parents' ``__init__`` first,
and a package that re-exports its submodules always "imports" them back.
"""

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("retention_crm", "customers", "campaigns", "metrics")
SKIPPED_DIRECTORIES = {"migrations", "tests"}

Graph = dict[str, set[str]]


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every project module by dotted name (a package by its own name, from its ``__init__.py``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if SKIPPED_DIRECTORIES & set(parts):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_time_imports(statements: Iterable[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported (not in functions, not under
    ``if TYPE_CHECKING:``)."""
    for statement in statements:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            yield statement
        elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        elif isinstance(statement, ast.If) and _is_type_checking(statement.test):
            yield from import_time_imports(statement.orelse)
        else:
            # Blocks that run at import time: if, try, with, for, a class body, ...
            for name in ("body", "orelse", "finalbody"):
                yield from import_time_imports(getattr(statement, name, []))
            for block in (*getattr(statement, "handlers", []), *getattr(statement, "cases", [])):
                yield from import_time_imports(block.body)  # except handlers and match cases


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name ``from ... import`` reads from, relative imports included."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join([*package, node.module] if node.module else package)


def imported_modules(module: str, source: str, known: Iterable[str], *, is_package: bool = False) -> set[str]:
    """The project modules ``module`` imports at import time."""
    known = set(known)
    found = set()
    for node in import_time_imports(ast.parse(source).body):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = _base(module, is_package, node)
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names  # a submodule, or a name defined in (or re-exported by) base
            ]
        for name in names:
            # ``import a.b.thing`` where thing is not a module: the deepest project module named.
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph(root: Path = ROOT) -> Graph:
    modules = project_modules(root)
    return {
        name: imported_modules(name, path.read_text(), modules, is_package=path.name == "__init__.py")
        for name, path in modules.items()
    }


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle (its modules in import order, the first repeated at the end) for every group of
    modules that import each other (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(graph, component) for component in components]


def _cycle_in(graph: Graph, component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, by a breadth-first search."""
    start = min(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a strongly connected component always has one


def test_the_project_modules_import_each_other_without_a_cycle():
    graph = import_graph()
    # The walk found the project: a guard that passes on an empty graph guards nothing.
    assert "customers.services.customers" in graph["customers.services.purchases"]
    assert "campaigns.triggers.points_expiring" in graph["campaigns.triggers"]
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_only_imports_that_run_at_import_time_count():
    known = {"app", "app.a", "app.b", "app.c", "app.d", "app.e", "app.f"}
    source = """
from typing import TYPE_CHECKING
import app.a
from app import b, helper_name
try:
    from app.c import thing
except ImportError:
    from app.d import thing
if TYPE_CHECKING:
    from app.e import Hint
else:
    import app.f

def late():
    from app.e import thing
"""
    assert imported_modules("app.main", source, known) == {"app", "app.a", "app.b", "app.c", "app.d", "app.f"}
    assert imported_modules("app.a", "from . import b\nfrom .c import x\n", known) == {"app.b", "app.c"}
    assert imported_modules("app", "from . import b\nfrom .c import x\n", known, is_package=True) == {
        "app.b",
        "app.c",
    }


def test_a_cycle_is_reported_with_its_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
