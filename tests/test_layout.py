"""The shape of the code, read from its source: each folder's layer, what may import what, no
import cycles, a docstring on every module, and a core that knows nothing of the web."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "live_server"

# Bottom to top: a module imports from its own folder or from a lower layer, never from a
# higher one nor from another folder of its own layer (the two protocols know nothing of each
# other). The top-level modules count as folders of their own.
LAYERS: list[set[str]] = [
    {"errors"},
    {"logs", "text", "wire_json"},  # leaves: no I/O beyond logging
    {"audio", "auth", "bus"},
    {"settings"},  # reads the environment; checks the local user's name by the accounts' rule
    {"engines"},
    {"storage"},
    {"core"},  # the turn, protocol-neutral
    {"transport"},  # a socket's reader, writer and queue
    {"astrbot", "realtime"},  # one folder per wire protocol
    {"web"},  # the Starlette app and its routes
    {"cli"},
    {"__main__"},
]
WEB_FRAMEWORKS = ("starlette", "uvicorn", "websockets")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted
    top_level: bool  # run on import (not in a function, not only for the type checker)


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), ast.parse(path.read_text(), str(path))


def _is_module(dotted: str) -> bool:
    path = PACKAGE.parent / dotted.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports() -> Iterator[Import]:
    for name, tree in modules():
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module]
                targets += [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                if not target.startswith("live_server"):
                    if target.split(".")[0] in WEB_FRAMEWORKS:
                        yield Import(name, target, id(node) in top)
                    continue
                if _is_module(target):
                    yield Import(name, target, id(node) in top)


def folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer(module: str) -> int:
    name = folder(module)
    for i, names in enumerate(LAYERS):
        if name in names:
            return i
    raise AssertionError(f"{module} is in no layer: add its folder to LAYERS")


def test_every_folder_has_a_layer() -> None:
    for name, _ in modules():
        if name != "live_server":
            layer(name)


def test_no_module_imports_upward_or_sideways() -> None:
    wrong = []
    for imp in imports():
        if not imp.target.startswith("live_server.") or imp.target == "live_server":
            continue
        a, b = folder(imp.module), folder(imp.target)
        if a == b:
            continue
        if layer(imp.target) > layer(imp.module) or layer(imp.target) == layer(imp.module):
            wrong.append(f"{imp.module} imports {imp.target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for imp in imports():
        if imp.top_level and imp.target.startswith("live_server") and imp.target != imp.module:
            graph.setdefault(imp.module, set()).add(imp.target)
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])


# (`transport` is where a Starlette socket becomes a `Connection`: the one place below `web`
# that knows the framework.)
@pytest.mark.parametrize("name", ["core", "engines", "audio", "storage", "auth"])
def test_below_the_web_layer_nothing_imports_the_web_framework(name: str) -> None:
    found = [
        f"{imp.module} imports {imp.target}"
        for imp in imports()
        if folder(imp.module) == name and imp.target.split(".")[0] in WEB_FRAMEWORKS
    ]
    assert not found, "\n".join(found)


def test_every_module_says_what_it_holds() -> None:
    missing = [name for name, tree in modules() if not ast.get_docstring(tree)]
    assert not missing, f"modules without a docstring: {missing}"


def test_importing_the_package_loads_no_engine_and_no_framework() -> None:
    code = (
        "import sys, live_server\n"
        "heavy = ('starlette', 'numpy', 'openai', 'faster_whisper', 'xllamacpp', 'piper')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
