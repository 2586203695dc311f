"""JSON files: read with errors naming the file; write whole or not at all.

Writes go to a temp file in the same folder, are fsynced, then published by an atomic link
(never overwriting) or an atomic replace (for files meant to be updated).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def read_json_object(path: Path, error: type[Exception], what: str) -> dict[str, Any]:
    """The JSON object in ``path``; anything else raises ``error`` naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{what} {path} is unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise error(f"{what} {path}: expected a JSON object")
    return data


def _fsynced_temp(folder: Path, text: str) -> Path:
    fd, name = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(name)


def write_json_new(path: Path, data: Any) -> Path:
    """Write ``data`` to ``path`` or, if taken, ``path-2``, ``path-3``...; returns the path used.

    ``os.link`` publishes the complete temp file under the final name and fails if the name
    exists, so concurrent writers (xdist workers) never overwrite or interleave each other.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _fsynced_temp(path.parent, json.dumps(data, indent=1, allow_nan=False) + "\n")
    try:
        for attempt in range(1, 1000):
            target = path if attempt == 1 else path.with_name(f"{path.stem}-{attempt}{path.suffix}")
            try:
                os.link(temp, target)
                return target
            except FileExistsError:
                continue
        raise FileExistsError(f"{path}: 999 records with this name already exist")
    finally:
        temp.unlink()


def write_text_replace(path: Path, text: str) -> None:
    """Atomically replace ``path`` (files meant to be updated): old or new content, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(_fsynced_temp(path.parent, text), path)


def write_json_replace(path: Path, data: Any) -> None:
    """Atomically replace a JSON file meant to be updated (e.g. baselines)."""
    write_text_replace(path, json.dumps(data, indent=1, allow_nan=False) + "\n")


def publish_folder(target: Path, fill: Callable[[Path], None]) -> bool:
    """Build a folder whole or not at all: ``fill`` writes into a temporary sibling, which is then
    renamed to ``target``. False when another process published ``target`` first (theirs is kept)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as temp:
        fill(Path(temp))
        try:
            os.replace(temp, target)
        except OSError:
            if not target.is_dir():
                raise
            return False
        os.mkdir(temp)  # TemporaryDirectory removes its folder on exit; give it an empty one
    return True
