"""The baselines store: ``<root>/<machine_id>/<test slug>-<spec_id>.json``, reviewed in PRs.

Each file keeps, per metric, the samples of the latest saved run and the history of per-run
values (so run-to-run noise is known). Saving is explicit (--inferlab-save-baseline), happens
under a lock (xdist workers) and replaces the file atomically: a crash leaves the old file whole.
A file that cannot be read is an error naming it, never "no baseline", and is never overwritten.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .env import machine_fingerprint
from .jsonio import read_json_object, write_json_replace
from .store import safe_name

SCHEMA_VERSION = 1
HISTORY_LIMIT = 50


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message names the file and what to do."""


@dataclass(frozen=True, slots=True)
class Baseline:
    path: Path
    machine_id: str
    data: dict[str, Any]

    def history(self, metric: str) -> list[float]:
        return [value for value, _ in self.runs(metric)]

    def runs(self, metric: str) -> list[tuple[float, float | None]]:
        """Per saved run: (value, host-speed reference seconds or None)."""
        entry = self.data["metrics"].get(metric)
        return [(run["value"], run.get("host_ref_s")) for run in entry["history"] if run["value"] is not None] if entry else []

    @property
    def fingerprint(self) -> dict[str, Any]:
        return self.data.get("fingerprint", {})


def _parse(path: Path) -> dict[str, Any]:
    try:
        data = read_json_object(path, BaselineError, "baseline")
    except BaselineError as exc:
        raise BaselineError(f"{exc}; fix it or restore it from git (it is never treated as missing nor overwritten)") from exc
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BaselineError(f"baseline {path} has schema_version {version!r}; this pytest-inferlab reads "
                            f"{SCHEMA_VERSION}. Upgrade pytest-inferlab, or move the file away and save a new one")
    if not isinstance(data.get("metrics"), dict):
        raise BaselineError(f"baseline {path}: missing 'metrics'")
    return data


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock per machine folder (POSIX); read-modify-write happens inside it."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: atomic replace still protects the file, concurrent saves may race
        yield
        return
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class BaselineStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def filename(test_id: str, spec_id: str) -> str:
        return f"{safe_name(test_id)}-{spec_id}.json"

    def load(self, machine_id: str, test_id: str, spec_id: str) -> Baseline | None:
        path = self.root / machine_id / self.filename(test_id, spec_id)
        return Baseline(path, machine_id, _parse(path)) if path.exists() else None

    def find(self, machine_id: str, test_id: str, spec_id: str) -> tuple[Baseline | None, bool]:
        """(baseline, same machine?): this machine's, else one of another fingerprint (never gates)."""
        own = self.load(machine_id, test_id, spec_id)
        if own is not None:
            return own, True
        name = self.filename(test_id, spec_id)
        for path in sorted(self.root.glob(f"*/{name}")):
            return Baseline(path, path.parent.name, _parse(path)), False
        return None, True

    def save(self, record: dict[str, Any]) -> Path:
        """Append ``record`` (a record's JSON) to its case's baseline: history + latest samples."""
        folder = self.root / record["machine_id"]
        path = folder / self.filename(record["test_id"], record["spec_id"])
        with _locked(folder):
            data = _parse(path) if path.exists() else {
                "schema_version": SCHEMA_VERSION, "machine_id": record["machine_id"],
                "test_id": record["test_id"], "spec_id": record["spec_id"], "spec": record["spec"], "metrics": {},
            }
            data["fingerprint"] = machine_fingerprint(record["environment"])
            now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            commit = (record["environment"].get("git") or {}).get("commit")
            host_ref_s = (record.get("conditions") or {}).get("host_ref_s")
            for name, m in record["measurements"].items():
                entry = data["metrics"].setdefault(name, {"unit": m["unit"], "history": []})
                entry["samples"] = m["samples"]
                entry["history"] = (entry["history"] + [
                    {"run_id": record["run_id"], "commit": commit, "value": m["value"], "host_ref_s": host_ref_s,
                     "saved_at": now}
                ])[-HISTORY_LIMIT:]
            for task, result in (record.get("evals") or {}).items():
                if result.get("items") is not None:  # the latest run's per-item correctness, for McNemar
                    data.setdefault("evals", {})[task] = {"items": result["items"], "limit": result.get("limit")}
            data["updated_at"] = now
            write_json_replace(path, data)
        return path

