"""The shape of hub/: every module imports on its own, and no module reaches itself through imports (no circles).

A circle often still imports in one order and fails in another, so both are checked: each module first, with no other
hub module loaded, in a fresh interpreter; and the import graph read from the source, where an import inside a function
counts like one at the top (deferring an import hides a circle, it does not remove it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

HUB = Path(__file__).resolve().parents[1] / "hub"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(HUB.rglob("*.py")):
        parts = list(path.relative_to(HUB.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The hub modules NAME imports anywhere in its body, except under `if TYPE_CHECKING:` (never run)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def add(module: str) -> None:
        while module and module not in known:  # `from hub.x import name`: the module hub.x (or hub.x.name itself)
            module = module.rpartition(".")[0]
        if module and module != name:
            found.add(module)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(alias.name)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package[: len(package) - child.level + 1] + ([base] if base else []))
                for alias in child.names:
                    add(f"{base}.{alias.name}")
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One path around each circle: the strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(_path(graph, set(component)))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _path(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest way round COMPONENT from its first module back to itself, for the failure message."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    raise AssertionError("a strongly connected component always leads back")


def test_the_graph_walk_finds_a_circle() -> None:
    # The checker itself: a circle through three modules is found (whatever module it starts from), a chain is not.
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_circles_in_hub() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert "hub.app" in graph["hub.cli"]  # imported inside cmd_serve: the walk sees deferred imports
    found = circles(graph)
    assert not found, "import circles in hub/:\n" + "\n".join(" -> ".join(c) for c in found)


# Runs in the child: each module imported first, with every hub module loaded before it unloaded again.
ALONE = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "hub" or m.startswith("hub.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ":\\n" + traceback.format_exc(limit=-3))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_on_its_own() -> None:
    names = [name for name in modules() if name != "hub.__main__"]  # __main__ runs the CLI when imported
    done = subprocess.run([sys.executable, "-c", ALONE, *names], capture_output=True, text=True, timeout=300,
                          cwd=HUB.parent)
    assert done.returncode == 0, f"modules that do not import on their own:\n{done.stdout}{done.stderr}"
