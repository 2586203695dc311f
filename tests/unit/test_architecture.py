"""docs/architecture.md stays the true map, and comments point only at files the repository has."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pytest_inferlab"
MAP = (ROOT / "docs" / "architecture.md").read_text()
SOURCES = [*PACKAGE.rglob("*.py"), *(ROOT / "tools").glob("*.py"), *(ROOT / "suites").glob("*.py"),
           *(ROOT / "tests").rglob("*.py")]
REPO_FILES = {str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts
              and ".git" not in p.parts}
PATH = re.compile(r"(?<![\w./-])((?:[\w-]+/)+[\w.-]+\.(?:py|md|json|yaml|txt|toml|jsonl))\b")


def exists(path: str) -> bool:
    """A path as the text writes it: from the repository root, or the package, or a suffix of a file."""
    return any(name == path or name.endswith("/" + path) for name in REPO_FILES)


def test_every_package_and_module_is_on_the_map():
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.name == "__init__.py":
            named = f"{rel.parent}/" in MAP if rel.parent != Path(".") else True
        else:
            named = str(rel) in MAP or f"`{rel.name}`" in MAP or f"{rel.name} " in MAP or f"{rel.name}:" in MAP
        if not named and "data" not in rel.parts:
            missing.append(str(rel))
    assert not missing, f"modules docs/architecture.md does not name: {missing}"


def test_every_file_the_map_names_exists():
    named = set(PATH.findall(MAP))
    assert named, "the map names no files: the pattern is wrong"
    assert sorted(p for p in named if not exists(p)) == []


def test_comments_cite_only_documents_the_repository_has():
    stale = []
    for source in SOURCES:
        text = source.read_text()
        if "DESIGN" in text and source.name != "test_architecture.py":
            stale.append(f"{source.relative_to(ROOT)}: cites DESIGN, which is not in the repository")
        if "tests" in source.relative_to(ROOT).parts:
            continue  # tests name the files they make
        stale += [f"{source.relative_to(ROOT)}: {path}" for path in PATH.findall(text) if not exists(path)]
    assert not stale, stale


def test_the_metrics_page_is_the_catalog():
    from metrics_doc import PAGE, render

    assert PAGE.read_text() == render(), "docs/reference/metrics.md is stale: python tools/reference_docs.py"
