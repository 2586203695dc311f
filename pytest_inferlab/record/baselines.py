"""The baselines store: ``<root>/<machine_id>/<test slug>-<test id hash>-<spec_id>.json``, reviewed in PRs.

Each file keeps, per metric, the samples of the latest saved run and the history of per-run
values (so run-to-run noise is known). One case, one file: the name carries a hash of the exact
test id, and a file whose stored test id differs is an error, never merged into. Saving is
explicit (--inferlab-save-baseline, ``inferlab save-baseline``), idempotent (a run already in a
history is not appended again) and all or nothing: every file is read and checked first, under a
lock per machine folder (xdist workers), then each is replaced atomically. A file that cannot be
read is an error naming it, never "no baseline", and is never overwritten.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from pytest_inferlab.record.environment import machine_fingerprint
from pytest_inferlab.ground.jsonio import read_json_object, write_json_replace_all
from pytest_inferlab.record.naming import baseline_filename, legacy_baseline_filename
from pytest_inferlab.record.record import NOT_MEASURED, Record

BASELINE_SCHEMA_VERSION = 1  # of the baseline file format (records have their own, record.py)
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
    def run_ids(self) -> set[str]:
        return {run.get("run_id") for entry in self.data["metrics"].values() for run in entry.get("history", ())}

    @property
    def fingerprint(self) -> dict[str, Any]:
        return self.data.get("fingerprint", {})


def parse_baseline(path: Path) -> dict[str, Any]:
    try:
        data = read_json_object(path, BaselineError, "baseline")
    except BaselineError as exc:
        raise BaselineError(f"{exc}; fix it or restore it from git (it is never treated as missing nor "
                            "overwritten)") from None
    version = data.get("schema_version")
    if version != BASELINE_SCHEMA_VERSION:
        raise BaselineError(f"baseline {path} has schema_version {version!r}; this pytest-inferlab reads "
                            f"{BASELINE_SCHEMA_VERSION}. Upgrade pytest-inferlab, or move the file away and save a new one")
    if not isinstance(data.get("metrics"), dict):
        raise BaselineError(f"baseline {path}: missing 'metrics'")
    return data


@contextlib.contextmanager
def _locked(folders: Iterable[Path]) -> Iterator[None]:
    """Exclusive locks on machine folders (POSIX), taken in sorted order; read-check-write inside."""
    try:
        import fcntl
    except ImportError:  # Windows: atomic replace still protects each file, concurrent saves may race
        yield
        return
    with contextlib.ExitStack() as stack:
        for folder in sorted(set(folders)):
            folder.mkdir(parents=True, exist_ok=True)
            handle = stack.enter_context(open(folder / ".lock", "w"))
            fcntl.flock(handle, fcntl.LOCK_EX)
            stack.callback(fcntl.flock, handle, fcntl.LOCK_UN)
        yield


@dataclass(frozen=True, slots=True)
class Saved:
    """What saving one record did: ``saved`` (appended), ``already`` (its run was in the history)."""

    path: Path
    test_id: str
    run_id: str
    outcome: str

    def line(self) -> str:
        if self.outcome == "already":
            return f"{self.path}: run {self.run_id} is already in its history, not appended again"
        return str(self.path)


@dataclass(slots=True)
class _Pending:
    """A baseline file being rebuilt in memory before anything is written."""

    path: Path
    data: dict[str, Any]
    legacy: Path | None  # the old-named file this one replaces
    changed: bool = False


class BaselineStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _read(self, path: Path, test_id: str) -> dict[str, Any]:
        data = parse_baseline(path)
        if data.get("test_id") != test_id:
            raise BaselineError(f"baseline {path} belongs to test {data.get('test_id')!r}, not {test_id!r}: it is "
                                "never merged into; restore the file from git or move it away")
        return data

    def _locate(self, folder: Path, test_id: str, spec_id: str) -> tuple[Path, Path | None]:
        """(the file to read, the legacy file it came from or None). A legacy file counts only when it
        holds this very test id: others that shared its slug start afresh under their own name."""
        path = folder / baseline_filename(test_id, spec_id)
        legacy = folder / legacy_baseline_filename(test_id, spec_id)
        if not path.exists() and legacy.exists() and parse_baseline(legacy).get("test_id") == test_id:
            return legacy, legacy
        return path, None

    def load(self, machine_id: str, test_id: str, spec_id: str) -> Baseline | None:
        path, _ = self._locate(self.root / machine_id, test_id, spec_id)
        return Baseline(path, machine_id, self._read(path, test_id)) if path.exists() else None

    def machine_histories(self, machine_id: str) -> list[dict[str, Any]]:
        """Every readable baseline of one machine (the gate pools their run-to-run noise); a file that
        cannot be read is left out here: its own case reports it."""
        found = []
        for path in sorted((self.root / machine_id).glob("*.json")):
            try:
                found.append(parse_baseline(path))
            except BaselineError:
                continue
        return found

    def find(self, machine_id: str, test_id: str, spec_id: str) -> tuple[Baseline | None, bool]:
        """(baseline, same machine?): this machine's, else one of another fingerprint (never gates)."""
        own = self.load(machine_id, test_id, spec_id)
        if own is not None:
            return own, True
        for folder in sorted(p for p in self.root.glob("*") if p.is_dir() and p.name != machine_id):
            other = self.load(folder.name, test_id, spec_id)
            if other is not None:
                return other, False
        return None, True

    def save(self, record: Record) -> Saved:
        """Append one record to its case's baseline; see ``save_all``."""
        [saved] = self.save_all([record])
        return saved

    def save_all(self, records: list[Record]) -> list[Saved]:
        """Append every record to its case's baseline, all or nothing: each file is read and checked
        (schema, test id) before any is written; a run already in a history is not appended again."""
        folders = [self.root / record.machine_id for record in records]
        with _locked(folders):
            pending: dict[Path, _Pending] = {}
            saved = [self._add(record, pending) for record in records]
            write_json_replace_all({item.path: item.data for item in pending.values() if item.changed})
            for item in pending.values():
                if item.changed and item.legacy is not None:
                    item.legacy.unlink()
        return saved

    def _add(self, record: Record, pending: dict[Path, _Pending]) -> Saved:
        folder = self.root / record.machine_id
        test_id, run_id = record.test_id, record.run_id
        target = folder / baseline_filename(test_id, record.spec_id)
        if target not in pending:
            source, legacy = self._locate(folder, test_id, record.spec_id)
            data = self._read(source, test_id) if source.exists() else {
                "schema_version": BASELINE_SCHEMA_VERSION, "machine_id": record.machine_id,
                "test_id": test_id, "spec_id": record.spec_id, "spec": record.spec, "metrics": {},
            }
            pending[target] = _Pending(target, data, legacy)
        item = pending[target]
        if run_id in Baseline(target, record.machine_id, item.data).run_ids:
            return Saved(target, test_id, run_id, "already")
        _append(item.data, record)
        item.changed = True
        return Saved(target, test_id, run_id, "saved")


def _append(data: dict[str, Any], record: Record) -> None:
    """Add one run to a baseline's content: per metric its value to the history, its samples as latest."""
    data["fingerprint"] = machine_fingerprint(record.environment)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    host_ref_s = record.conditions.get("host_ref_s")
    for name, m in sorted(record.measurements.items()):
        entry = data["metrics"].setdefault(name, {"unit": m.unit, "history": []})
        entry["samples"] = list(m.samples)
        entry["history"] = (entry["history"] + [
            {"run_id": record.run_id, "commit": record.commit, "value": m.value, "host_ref_s": host_ref_s,
             "saved_at": now}
        ])[-HISTORY_LIMIT:]
    for task, result in record.evals.items():
        if result.get("items") is not None:  # the latest run's per-item correctness, for McNemar
            data.setdefault("evals", {})[task] = {"items": result["items"], "limit": result.get("limit")}
    data["updated_at"] = now



def invalid_reason(record: Record) -> str | None:
    """Why a record's measurement cannot be trusted (another process took the CPU, xdist workers
    beside it, the load generator fell behind), or None. Such a record never enters a history."""
    reason = record.conditions.get("invalid")
    if reason:
        return str(reason)
    for verdict in record.verdicts:  # records written before conditions.invalid
        if verdict.get("outcome") == "invalid" and verdict.get("reason") != NOT_MEASURED:
            return str(verdict.get("reason"))
    return None


@dataclass(frozen=True, slots=True)
class SaveReport:
    """What a save did: each record saved or already there, and the records left out with why."""

    saved: tuple[Saved, ...]
    left_out: tuple[tuple[str, str], ...]  # (test id, reason)

    def lines(self) -> list[str]:
        counts = [f"{sum(s.outcome == 'saved' for s in self.saved)} saved",
                  f"{sum(s.outcome == 'already' for s in self.saved)} already in their history",
                  f"{len(self.left_out)} left out"]
        return ([f"baselines: {', '.join(counts)}"] + [f"  {s.line()}" for s in self.saved]
                + [f"  left out {test_id}: {reason}" for test_id, reason in self.left_out])


def save_valid(store: BaselineStore, records: list[Record]) -> SaveReport:
    """Save the valid records, all or nothing; invalid ones are left out and named."""
    reasons = [invalid_reason(r) for r in records]
    left_out = tuple((r.test_id, f"invalid measurement ({why})") for r, why in zip(records, reasons) if why)
    valid = [r for r, why in zip(records, reasons) if why is None]
    return SaveReport(tuple(store.save_all(valid)), left_out)
