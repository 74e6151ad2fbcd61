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


def imports(name: str, path: Path, known: dict[str, Path], *, typing: bool = False) -> set[str]:
    """The hub modules NAME imports anywhere in its body, except under `if TYPE_CHECKING:` (never run) unless
    TYPING (a dependency all the same, for what a module may know)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def add(module: str) -> None:
        while module and module not in known:  # `from hub.x import name`: the module hub.x (or hub.x.name itself)
            module = module.rpartition(".")[0]
        if module and module != name:
            found.add(module)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child) and not typing:
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


# -- who may import whom: adapters know the contract and the words, the core knows no adapter ----------------------

#: What an adapter (a module under hub/channels/) may import from the hub besides its own provider's package, and
#: why. Never the store, the ingest, the outbox or routing: what it needs of them comes through the host
#: (hub.channel_host, seen as the sinks of hub.channels.base).
ADAPTER_MAY_IMPORT = {
    "hub.channels.base": "the adapter contract: Channel, the sinks, Inbound's results, Fact, the errors",
    "hub.model": "the words",
    "hub.identities": "the words: an identity's normal form",
    "hub.config": "the adapter's own settings",
    "hub.events": "Event and Subscription, published and read through the host",
    "hub.metrics": "counters",
    "hub.tasks": "background tasks started and stopped with the adapter",
    "hub.sockets": "open websockets, closed at shutdown",
    "hub.html_safety": "sanitizing a provider's HTML",
    "hub.downloads": "serving a file as a download",
    "hub.business_hours": "a pure rule over a line's opening hours",
    "hub.api.errors": "HTTP error bodies (4xx with a reason)",
    "hub.api.params": "HTTP path and query parameters",
    "hub.api.schemas": "request bodies of the adapter's own API routes",
    "hub.api.auth": "who is asking, for the routes agents and admins call",
    "hub.json_codec": "JSON answers, serialized fast",
    "hub.fail_points": "named places where a test kills the process (the IMAP poller's, between a batch and \\Seen)",
}

#: Modules outside hub/channels/ that may import an adapter (anything of hub.channels but the contract), and why.
MAY_IMPORT_ADAPTERS = {
    "hub.app": "the wiring: builds the adapters from the settings",
    "hub.cli": "the wiring of commands: `hub events replay` gets the channels' rules, `hub telegram set-webhook`...",
    "hub.demo": "the demo drives the adapters from outside, as a provider would (signing, webhooks)",
}


def _package_of(module: str) -> str:
    """The provider package an adapter module belongs to: hub.channels.twilio for hub.channels.twilio.sms, and
    the module itself for a single-module adapter (hub.channels.api)."""
    return ".".join(module.split(".")[:3])


def _may(name: str, table: dict[str, str]) -> bool:
    return any(name == allowed or name.startswith(allowed + ".") for allowed in table)


def adapter_faults(graph: dict[str, set[str]]) -> list[str]:
    """Each import of an adapter module that is neither its own provider's package nor in ADAPTER_MAY_IMPORT."""
    wrong = []
    for name in sorted(graph):
        # the contract, and the wiring's registry of the adapters' rules (it imports them)
        if not name.startswith("hub.channels.") or name in ("hub.channels.base", "hub.channels.registry"):
            continue
        own = _package_of(name)
        for dep in sorted(graph[name]):
            if not (dep == own or dep.startswith(own + ".") or dep in ADAPTER_MAY_IMPORT):
                wrong.append(f"{name} imports {dep}")
    return wrong


def core_faults(graph: dict[str, set[str]]) -> list[str]:
    """Each import of an adapter (anything of hub.channels but the contract) by a module outside hub/channels/
    that is not in MAY_IMPORT_ADAPTERS."""
    wrong = []
    for name in sorted(graph):
        if name == "hub.channels" or name.startswith("hub.channels.") or _may(name, MAY_IMPORT_ADAPTERS):
            continue
        wrong += [f"{name} imports {dep}" for dep in sorted(graph[name])
                  if dep.startswith("hub.channels.") and dep != "hub.channels.base"]
    return wrong


def _typed_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known, typing=True) for name, path in known.items()}


def test_the_layout_checks_find_a_fault() -> None:
    # The checkers themselves on a made-up graph: an adapter reaching the store, the core reaching an adapter.
    graph = {
        "hub.channels.twilio.sms": {"hub.channels.twilio.account", "hub.channels.base", "hub.model",
                                    "hub.history.store"},
        "hub.channels.api": {"hub.channels.twilio.sms", "hub.api.errors"},
        "hub.outbox": {"hub.channels.base", "hub.channels.twilio.sms"},
        "hub.app": {"hub.channels.twilio.sms"},
        "hub.demo.runner": {"hub.channels.email.channel"},
    }
    assert adapter_faults(graph) == ["hub.channels.api imports hub.channels.twilio.sms",
                                     "hub.channels.twilio.sms imports hub.history.store"]
    assert core_faults(graph) == ["hub.outbox imports hub.channels.twilio.sms"]


def test_adapters_import_only_the_contract_the_words_and_named_infrastructure() -> None:
    wrong = adapter_faults(_typed_graph())
    assert not wrong, "adapters importing what is not theirs (see ADAPTER_MAY_IMPORT):\n" + "\n".join(wrong)


def test_the_core_imports_no_adapter() -> None:
    wrong = core_faults(_typed_graph())
    assert not wrong, "the core importing an adapter (it may import hub.channels.base only):\n" + "\n".join(wrong)
