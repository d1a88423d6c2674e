"""authsvc's packages import one way (see authsvc/__init__.py): no import cycle between them.

The parts are authsvc's subpackages and top-level modules; an import anywhere in a part (also
inside a function) counts as an edge from that part to the part it names.
"""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

import authsvc

Edges = dict[str, dict[str, list[str]]]  # part -> imported part -> where ("file:line")


def _module_name(path: pathlib.Path, root: pathlib.Path, package: str) -> tuple[str, ...]:
    parts = (package, *path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported(node: ast.AST, module: tuple[str, ...], is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module if is_package else module[:-1]
            base = base[: len(base) - (node.level - 1)]
            name = ".".join([*base, *([node.module] if node.module else [])])
        else:
            name = node.module or ""
        # `from authsvc import twofactor` imports the part `twofactor`.
        return [name, *(f"{name}.{alias.name}" for alias in node.names)]
    return []


def part_edges(root: pathlib.Path, package: str) -> Edges:
    """Which part of `package` (source in `root`) imports which other part, and where."""
    # A subpackage may be a namespace package (no __init__.py): any folder with Python files is a part.
    parts = {p.stem if p.is_file() else p.name for p in root.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and any(p.rglob("*.py")))}
    edges: Edges = defaultdict(lambda: defaultdict(list))
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root, package)
        if len(module) < 2:
            continue  # the package's own __init__
        source = module[1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = {name.split(".")[1] for name in _imported(node, module, path.name == "__init__.py")
                       if name.split(".")[0] == package and name.count(".")}
            for target in sorted(targets & parts - {source}):
                edges[source][target].append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return edges


def cycles(edges: Edges) -> list[list[str]]:
    """Every strongly connected group of more than one part (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_authsvc_packages_import_one_way():
    root = pathlib.Path(authsvc.__file__).parent
    edges = part_edges(root, "authsvc")
    assert edges["tokens"]["projects"], "the import scan found no edge it should have: it is broken"
    report = []
    for group in cycles(edges):
        report.append(" <-> ".join(group) + ":")
        for a in group:
            for b in group:
                for where in edges[a].get(b, [])[:3]:
                    report.append(f"  {a} -> {b}  ({where})")
    assert not report, "import cycles between authsvc's packages:\n" + "\n".join(report)


def test_the_check_finds_a_cycle_and_where(tmp_path):
    pkg = tmp_path / "pkg"
    for sub, text in {"a": "from pkg.b.x import y\n", "b": "def f():\n    from ..c import z\n",
                      "c": "import pkg.a.models\n", "d": "from pkg import a\n"}.items():
        (pkg / sub).mkdir(parents=True)
        if sub != "c":  # a namespace package is a part too
            (pkg / sub / "__init__.py").write_text("")
        (pkg / sub / "mod.py").write_text(text)
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("from pkg.d.mod import thing\n")
    edges = part_edges(pkg, "pkg")
    assert cycles(edges) == [["a", "b", "c"]]
    assert edges["b"]["c"] == ["pkg/b/mod.py:2"]
    assert edges["d"]["a"] == ["pkg/d/mod.py:1"]
    assert edges["errors"]["d"] == ["pkg/errors.py:1"]
