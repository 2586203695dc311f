"""The installed Python packages, and how they stand against the project's lock.

A record's numbers are reproducible only with the environment that produced them: every run folder
keeps the full list of installed distributions (``packages.txt``, installable with pip), and every
record says whether that environment was the one ``requirements/lock.txt`` pins (with the lock's
digest) or where it differs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCK_FILES = ("requirements/lock.txt", "requirements/nodeps.txt")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
SELF = "pytest-inferlab"


def normalized(name: str) -> str:
    """PEP 503 name normalization: ``Foo_Bar`` and ``foo-bar`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """Every distribution importable here, by normalized name (the first one found wins, as for import)."""
    versions: dict[str, str] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(normalized(name), dist.version)
    return dict(sorted(versions.items()))


def pins(text: str) -> dict[str, str]:
    """``name==version`` lines of a pip requirements file (hash and comment lines skipped)."""
    found = (PIN.match(line.strip()) for line in text.splitlines())
    return {normalized(m.group(1)): m.group(2) for m in found if m}


def same_version(locked: str, present: str) -> bool:
    """``2.13.0+cpu`` is what ``torch==2.13.0`` installs: a local label counts only when the pin has one."""
    return present == locked or ("+" not in locked and present.split("+", 1)[0] == locked)


@dataclass(frozen=True, slots=True)
class LockState:
    """The lock files found at the project root, their digest, and where the installed set differs."""

    files: tuple[str, ...]
    sha256: str | None
    differences: tuple[str, ...]  # "name: locked X, installed Y" (or "not installed")

    def to_json(self) -> dict[str, Any]:
        return {"files": list(self.files), "sha256": self.sha256, "matches": self.sha256 is not None
                and not self.differences, "differences": list(self.differences)}


def lock_state(root: Path, present: dict[str, str] | None = None) -> LockState:
    present = installed() if present is None else present
    digest = hashlib.sha256()
    files, locked = [], {}
    for name in LOCK_FILES:
        path = root / name
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        files.append(name)
        digest.update(name.encode() + b"\0" + text.encode())
        locked.update(pins(text))
    differences = tuple(f"{name}: locked {version}, installed {present.get(name, 'nothing')}"
                        for name, version in sorted(locked.items())
                        if not same_version(version, present.get(name, "")))
    return LockState(tuple(files), digest.hexdigest() if files else None, differences)


def packages_txt(state: LockState, present: dict[str, str] | None = None) -> str:
    """The installed set as a pip requirements file; the lock's digest and differences in its header."""
    present = installed() if present is None else present
    head = [f"# Installed packages of this run (Python {platform.python_version()}); reinstall with",
            "#   pip install --no-deps -r packages.txt   (torch: the build named here; CPU wheels carry +cpu)"]
    if state.sha256 is None:
        head.append("# no lock file at the project root")
    else:
        head.append(f"# lock {' + '.join(state.files)} sha256 {state.sha256}: "
                    + ("installed as locked" if not state.differences else "differences below"))
        head += [f"#   {line}" for line in state.differences]
    body = [f"# {name}=={version} (this checkout)" if name == SELF else f"{name}=={version}"
            for name, version in present.items()]
    return "\n".join(head + body) + "\n"
