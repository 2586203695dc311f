"""What a file is, for caches keyed by it: its version (path, size, mtime)."""

from __future__ import annotations

import os
from pathlib import Path


def file_version(path: Path | str) -> tuple[str, int, int]:
    """(absolute path, size, mtime) of ``path``: the key of what is computed once per version of a file."""
    stat = os.stat(path)
    return os.path.abspath(path), stat.st_size, stat.st_mtime_ns
