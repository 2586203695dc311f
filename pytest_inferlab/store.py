"""Writers. Nothing is half-written (temp file, fsync, atomic link) or silently overwritten."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from .record import Record


def safe_name(text: str, limit: int = 120) -> str:
    """A file-name-safe slug of a test id (the spec_id keeps names unique)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")
    return slug[:limit] or "case"


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


def write_json_replace(path: Path, data: Any) -> None:
    """Atomically replace ``path`` (files meant to be updated, e.g. baselines): old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _fsynced_temp(path.parent, json.dumps(data, indent=1, allow_nan=False) + "\n")
    os.replace(temp, path)


class RecordStore:
    """``<results>/runs/<run_id>/<test slug>-<spec_id>.json``, one file per case."""

    def __init__(self, results_dir: Path, run_id: str) -> None:
        self.folder = results_dir / "runs" / run_id

    def write(self, record: Record) -> Path:
        name = f"{safe_name(record.test_id)}-{record.spec_id}.json"
        return write_json_new(self.folder / name, record.to_json())
