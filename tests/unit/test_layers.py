"""The stages are the import order, and pytest stays in the plugin: the import-linter contracts of
pyproject.toml ([tool.importlinter]) hold for the package, a planted back-import breaks them, and every
module below the plugin imports with pytest blocked."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())"]


def lint(cwd: Path, package_parent: Path) -> subprocess.CompletedProcess:
    return subprocess.run(LINT, cwd=cwd, capture_output=True, text=True, timeout=240,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(package_parent), "HOME": str(cwd)})


def test_the_package_keeps_its_contracts():
    result = lint(ROOT, ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_a_planted_back_import_breaks_the_stages(tmp_path):
    shutil.copytree(ROOT / "pytest_inferlab", tmp_path / "pytest_inferlab",
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    planted = tmp_path / "pytest_inferlab" / "ground" / "progress.py"
    planted.write_text(planted.read_text() + "\nfrom pytest_inferlab.judge.verdict import REGRESSED  # planted\n")
    result = lint(tmp_path, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pytest_inferlab.ground.progress -> pytest_inferlab.judge.verdict" in result.stdout
    assert "the stages are the import order BROKEN" in result.stdout


BLOCKED = textwrap.dedent("""
    import importlib, pkgutil, sys

    class Blocked:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("pytest", "_pytest"):
                raise ImportError(f"pytest blocked: {name}")

    sys.meta_path.insert(0, Blocked())
    import pytest_inferlab
    imported, missing = 0, []
    for info in pkgutil.walk_packages(pytest_inferlab.__path__, "pytest_inferlab."):
        # above the plugin: the plugin, the command, and the one suite module inferlab tune runs with pytest
        if info.name.startswith(("pytest_inferlab.plugin", "pytest_inferlab.cli", "pytest_inferlab.tune.trial_suite")):
            continue
        try:
            importlib.import_module(info.name)
            imported += 1
        except ImportError as exc:
            if "pytest blocked" in str(exc):
                raise SystemExit(f"{info.name} imports pytest: {exc}")
            missing.append(f"{info.name} ({exc.name})")  # an optional library this machine lacks (vLLM)
    assert "pytest" not in sys.modules and "_pytest" not in sys.modules
    print(imported, "imported;", len(missing), "need libraries absent here:", ", ".join(missing))
""")


def test_every_module_below_the_plugin_imports_without_pytest():
    result = subprocess.run([sys.executable, "-c", BLOCKED], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    imported = int(result.stdout.split()[0])
    assert imported > 100, result.stdout  # the package's modules below the plugin, not a handful


def test_every_import_of_the_package_names_a_module_that_exists():
    """Lazy imports (inside functions) run only when their path does: a module moved between stages
    must leave none behind that names its old place."""
    import ast
    import importlib.util

    stale = []
    for path in sorted((ROOT / "pytest_inferlab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("pytest_inferlab"):
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("pytest_inferlab")]
            else:
                continue
            stale += [f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in names
                      if importlib.util.find_spec(name) is None]
    assert not stale, stale
