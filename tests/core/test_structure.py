"""The shape of embedded_server that keeps it easy to change: every core `-ERR` text comes from the one table
(errors.py), so changing a text is one edit; its modules import each other one way only (no cycle, counting
the imports made inside functions), so each can be read and changed from the bottom up."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import embedded_server
from embedded_server import errors

PACKAGE = Path(embedded_server.__file__).parent


def sources() -> dict[str, str]:
    return {str(p.relative_to(PACKAGE)): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_core_err_text_comes_from_the_table():
    literal = re.compile(r"""-ERR '[^%]|send_err\(\s*f?["']|queue_err\(\s*f?["']""")
    found = [f"{name}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)}"
             for name, text in sources().items() if name != "errors.py"
             for m in literal.finditer(text)]
    assert found == [], "an -ERR text written outside embedded_server/errors.py"


def test_one_text_one_entry():
    texts = [e.text for e in vars(errors).values() if isinstance(e, errors.Err)]
    assert texts and len(texts) == len(set(texts))


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in its code but under `if TYPE_CHECKING:`."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("embedded_server",) + path.relative_to(PACKAGE).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def named(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        pending = [ast.parse(path.read_text())]
        while pending:
            for node in ast.iter_child_nodes(pending.pop()):
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                    continue
                if isinstance(node, ast.Import):
                    found.update(named(a.name) for a in node.names)
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        up = package.split(".")[:len(package.split(".")) - node.level + 1]
                        base = ".".join(up + ([node.module] if node.module else []))
                    found.update(named(f"{base}.{a.name}") or named(base) for a in node.names)
                pending.append(node)
        graph[name] = {m for m in found if m and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}   # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_no_import_cycles():
    graph = import_graph()
    assert "embedded_server.server" in graph and "embedded_server.client" in graph["embedded_server.server"]
    assert find_cycle(graph) == []


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
