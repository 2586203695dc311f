"""One source for the figures the README and the docs quote about the project itself (how long the
lab, the tests and CI take here, how many packages the lock holds): ``docs/figures.toml``.

A page quotes a figure as ``<!--figure:KEY-->VALUE<!--/figure-->`` (the comments do not render).
``python tools/figures.py`` rewrites every quoted VALUE from the file; tests/unit/test_docs.py fails
when a page quotes a value the file does not hold, names a key it lacks, or when a figure the
repository can count itself (``count = "lock"``) is out of date.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "docs" / "figures.toml"
QUOTE = re.compile(r"<!--figure:([a-z0-9-]+)-->(.*?)<!--/figure-->", re.S)


@dataclass(frozen=True)
class Figure:
    key: str
    value: str
    measured: str  # when and where
    command: str  # what reproduces it
    count: str | None = None  # a figure the repository counts itself ("lock": the lock's packages)


def figures(path: Path = SOURCE) -> dict[str, Figure]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {key: Figure(key, str(entry["value"]), entry["measured"], entry["command"], entry.get("count"))
            for key, entry in data.items()}


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def counted(figure: Figure) -> str | None:
    """What the repository says today for a figure it can count (None: a measured figure)."""
    if figure.count == "lock":
        lock = (ROOT / "requirements" / "lock.txt").read_text(encoding="utf-8")
        return str(len(re.findall(r"^[A-Za-z0-9_.-]+==", lock, re.M)))
    return None


def problems() -> list[str]:
    """Every quote that disagrees with the source, names no figure, or a counted figure out of date."""
    known, found = figures(), []
    for figure in known.values():
        now = counted(figure)
        if now is not None and now != figure.value:
            found.append(f"{SOURCE.name}: {figure.key} = {figure.value!r}, but the repository counts {now}")
    for page in pages():
        for match in QUOTE.finditer(page.read_text(encoding="utf-8")):
            key, value = match.group(1), match.group(2)
            name = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page
            where = f"{name}:{page.read_text(encoding='utf-8')[:match.start()].count(chr(10)) + 1}"
            if key not in known:
                found.append(f"{where}: figure {key!r} is not in {SOURCE.relative_to(ROOT)}")
            elif value != known[key].value:
                found.append(f"{where}: {key} quoted as {value!r}; {SOURCE.relative_to(ROOT)} says {known[key].value!r} "
                             "(python tools/figures.py rewrites the pages)")
    return found


def rewrite() -> list[Path]:
    """Every page's quotes set to the source's values; the pages changed."""
    known, changed = figures(), []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        new = QUOTE.sub(lambda m: (f"<!--figure:{m.group(1)}-->{known[m.group(1)].value}<!--/figure-->"
                                   if m.group(1) in known else m.group(0)), text)
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed.append(page)
    return changed


if __name__ == "__main__":
    for page in rewrite():
        print(f"rewrote {page.relative_to(ROOT)}")
    left = problems()
    print("\n".join(left) if left else "every quoted figure matches docs/figures.toml")
    sys.exit(1 if left else 0)
