"""The shape of the package: modules per package, the longest classes and functions, and the
places that probe an engine with ``hasattr``/``getattr`` instead of the protocol.

``python tools/code_shape.py [PACKAGE_DIR]`` (default: pytest_inferlab next to this folder).
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

ENGINE_NAMES = ("engine", "target", "draft")  # what the code calls an Engine (torch modules are "model")


def probes(tree: ast.AST) -> list[int]:
    """Lines calling hasattr/getattr on a name that holds an engine."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
                and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in ENGINE_NAMES):
            found.append(node.lineno)
    return found


def main(root: str | None = None) -> None:
    package = Path(root) if root else Path(__file__).resolve().parents[1] / "pytest_inferlab"
    modules: Counter[str] = Counter()
    sizes: list[tuple[int, str, str]] = []
    probe_lines: list[str] = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        modules[str(rel.parent) if rel.parent != Path(".") else "(top)"] += 1
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                kind = "class" if isinstance(node, ast.ClassDef) else "def"
                sizes.append((node.end_lineno - node.lineno + 1, kind, f"{rel}:{node.name}"))
        probe_lines += [f"{rel}:{line}" for line in probes(tree)]
    print("modules per package:")
    for name, count in sorted(modules.items()):
        print(f"  {name:32} {count}")
    for kind in ("class", "def"):
        print(f"longest {'classes' if kind == 'class' else 'functions'}:")
        for lines, _, name in sorted((s for s in sizes if s[1] == kind), reverse=True)[:5]:
            print(f"  {lines:4} {name}")
    print(f"hasattr/getattr on an engine: {len(probe_lines)}", *probe_lines, sep="\n  ")


if __name__ == "__main__":
    main(*sys.argv[1:])
