"""The import graph of the product: no module reaches itself through imports, and each package
imports only the packages below it.

The graph is read from the source with ``ast``, counting every ``import`` at any depth: the lazy
imports inside functions (how the CLI avoids loading torch) are fine, but they may close no cycle.
``from a.b import c`` is an edge to the module ``a.b.c`` when that is a module file, else to ``a.b``;
a package's ``__init__.py`` is the package's module; the implicit import of a parent package is not
an edge.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The package table of DESIGN.md, made precise: the project packages each package may import.
ALLOWED: dict[str, frozenset[str]] = {
    "kernels": frozenset(),
    "sandbox": frozenset(),
    "prompts": frozenset(),
    "evaluator": frozenset({"kernels", "sandbox"}),
    "agents": frozenset({"prompts", "kernels"}),
    "memory": frozenset({"evaluator", "kernels", "sandbox", "agents"}),
    "discover": frozenset({"kernels", "sandbox", "prompts", "evaluator", "agents", "memory"}),
}
UNCHECKED = ("tests", "bench")  # may import anything, but no product module may import them


@dataclass(frozen=True)
class Edge:
    source: str  # the importing module
    target: str  # the imported module
    path: Path  # the importing file, relative to the root
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} -> {self.target}"


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``, by dotted name (a package's name for its __init__)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path.relative_to(root)
    return modules


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
              modules: Mapping[str, Path]) -> list[str]:
    """The dotted names a statement imports, resolved against the modules that exist."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: up from the importing module's own package
        anchor = module.split(".")
        anchor = anchor if is_package else anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]


def import_edges(root: Path, packages: Iterable[str], also_project: Iterable[str] = UNCHECKED) -> list[Edge]:
    """Every import of a project module by a module of ``packages``, each with its file and line.

    A project module is one of ``packages`` or of ``also_project`` (folders whose modules are not
    read, so any import of them is reported as it is written).
    """
    packages = tuple(packages)
    modules = module_files(root, packages)
    project = {*packages, *also_project}
    edges: dict[tuple, Edge] = {}
    for module, path in modules.items():
        tree = ast.parse((root / path).read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in _imported(node, module, path.name == "__init__.py", modules):
                if name.split(".")[0] not in project:
                    continue
                # A name that is no module file (what a package's __init__ defines) lands on the
                # deepest module above it that is one.
                target = name
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                edge = Edge(module, target if target in modules else name, path, node.lineno)
                edges.setdefault((edge.source, edge.target, edge.line), edge)
    return list(edges.values())


def _shortest_cycle(start: str, graph: Mapping[str, Mapping[str, Edge]]) -> list[Edge] | None:
    """The shortest chain of imports from ``start`` back to itself (breadth first), if any."""
    came_by: dict[str, Edge] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for target, edge in graph.get(module, {}).items():
            if target == start:
                chain = [edge]
                while chain[0].source != start:
                    chain.insert(0, came_by[chain[0].source])
                return chain
            if target not in came_by:
                came_by[target] = edge
                queue.append(target)
    return None


def find_cycles(edges: Iterable[Edge]) -> list[list[Edge]]:
    """For every module on a cycle, the shortest cycle through it; each cycle once."""
    graph: dict[str, dict[str, Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, {}).setdefault(edge.target, edge)  # the first import of a target
    cycles, seen = [], set()
    for module in sorted(graph):
        chain = _shortest_cycle(module, graph)
        if chain is None:
            continue
        turn = chain.index(min(chain, key=lambda edge: edge.source))
        chain = chain[turn:] + chain[:turn]  # from its first module by name, so each cycle reads one way
        key = tuple(edge.source for edge in chain)
        if key not in seen:
            seen.add(key)
            cycles.append(chain)
    return cycles


def describe_cycle(chain: list[Edge]) -> str:
    """``a (a.py:3) -> b (b.py:9) -> a``: each module with the line that imports the next one."""
    return " -> ".join(f"{edge.source} ({edge.path}:{edge.line})" for edge in chain) + f" -> {chain[0].source}"


def wrong_way(edges: Iterable[Edge], allowed: Mapping[str, Iterable[str]]) -> list[Edge]:
    """The imports of another package that ``allowed`` does not grant the importing package."""
    bad = []
    for edge in edges:
        source, target = edge.source.split(".")[0], edge.target.split(".")[0]
        if target != source and target not in allowed.get(source, ()):
            bad.append(edge)
    return bad


def test_no_module_imports_itself_through_a_cycle():
    cycles = find_cycles(import_edges(ROOT, ALLOWED))
    assert not cycles, "import cycles:\n" + "\n".join(map(describe_cycle, cycles))


def test_packages_import_only_downward():
    bad = wrong_way(import_edges(ROOT, ALLOWED), ALLOWED)
    assert not bad, "imports against the package table:\n" + "\n".join(map(str, bad))


def test_the_checker_catches_a_lazy_cycle_and_an_upward_import(tmp_path):
    files = {
        "low/__init__.py": "",
        "low/base.py": "import os\n\ndef helper():\n    from high.app import run\n    return run\n",
        "high/__init__.py": "from .app import run\n",
        "high/app.py": "from low import base\nfrom high import tools\n\ndef run():\n    return tools\n",
        "high/tools.py": "def lazy():\n    import high.app\n    return high.app\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    edges = import_edges(tmp_path, ("low", "high"), also_project=())
    assert {(edge.source, edge.target) for edge in edges} == {
        ("low.base", "high.app"), ("high", "high.app"), ("high.app", "low.base"), ("high.app", "high.tools"),
        ("high.tools", "high.app")}

    assert [str(edge) for edge in wrong_way(edges, {"low": (), "high": ("low",)})] == [
        f"{Path('low/base.py')}:4 -> high.app"]
    cycles = sorted(describe_cycle(chain) for chain in find_cycles(edges))
    assert cycles == [f"high.app ({Path('high/app.py')}:1) -> low.base ({Path('low/base.py')}:4) -> high.app",
                      f"high.app ({Path('high/app.py')}:2) -> high.tools ({Path('high/tools.py')}:2) -> high.app"]
