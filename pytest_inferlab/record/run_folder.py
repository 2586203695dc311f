"""A run folder read back whole: its manifest and every record, or an error naming the file.

``inferlab report`` and ``inferlab compare`` read runs made anywhere (a CI artifact, a colleague's
laptop); they refuse a folder that is not a run, records of a schema this version cannot read, and
a half-written run, before they write anything. A run folder holds:

    <results>/runs/<run id>/
        inferlab-run.manifest   the manifest (JSON; not *.json, so that globs for records stay
                            records): status "running" from the first record on, then
                            "finished" or "interrupted" with the run's exit status and command
        <case>-<spec id>.json   one record per case (record/record.py)
        packages.txt, *.png, report.html   what the run printed and drew, rebuilt from the records

A folder without a manifest was made before pytest-inferlab wrote one; it is read as finished.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_inferlab.ground.jsonio import is_temp, read_json_object, write_json_replace, write_text_if_absent

if TYPE_CHECKING:
    from pytest_inferlab.record.record import Record

MANIFEST = "inferlab-run.manifest"
MANIFEST_VERSION = 1
RUNNING, FINISHED, INTERRUPTED = "running", "finished", "interrupted"


class RunFolderError(ValueError):
    """A folder that cannot be read as a run; the message names the file and what to do."""


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def start_manifest(folder: Path, run_id: str, command: list[str]) -> None:
    """Mark ``folder`` as a run in progress (the first writer of a record does; later ones keep it)."""
    data = {"manifest_version": MANIFEST_VERSION, "run_id": run_id, "status": RUNNING, "started_at": _now(),
            "command": command}
    write_text_if_absent(folder / MANIFEST, json.dumps(data, indent=1) + "\n")


def finish_manifest(folder: Path, run_id: str, command: list[str], exit_status: int, interrupted: bool,
                    failures: list[dict[str, str]] | None = None) -> None:
    """The run is over: its status, exit status, record count and the cases that failed, each
    ``{"nodeid", "when", "reason"}`` (atomically replaces the manifest)."""
    path = folder / MANIFEST
    started = None
    if path.exists():
        try:
            started = read_json_object(path, RunFolderError, "run manifest").get("started_at")
        except RunFolderError:
            started = None
    from pytest_inferlab.record.record import record_files

    write_json_replace(path, {"manifest_version": MANIFEST_VERSION, "run_id": run_id,
                              "status": INTERRUPTED if interrupted else FINISHED, "started_at": started,
                              "finished_at": _now(), "command": command, "exit_status": int(exit_status),
                              "records": len(record_files(folder)), "failures": failures or []})


def pytest_command() -> list[str]:
    """How this run was started, for the manifest and the report (``pytest suites/ -k ...``)."""
    return ["pytest", *sys.argv[1:]]


@dataclass(frozen=True, slots=True)
class RunFolder:
    """A run read back: its folder, manifest (None for runs made before manifests) and records."""

    path: Path
    manifest: dict[str, Any] | None
    records: tuple[Record, ...]  # typed, as the lab wrote them

    @property
    def run_id(self) -> str:
        return (self.manifest or {}).get("run_id") or self.records[0].run_id

    @property
    def status(self) -> str:
        return (self.manifest or {}).get("status", FINISHED)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    data = read_json_object(path, RunFolderError, "run manifest")
    if data.get("manifest_version") != MANIFEST_VERSION:
        raise RunFolderError(f"{path}: manifest_version {data.get('manifest_version')!r} is not supported (this "
                             f"pytest-inferlab reads {MANIFEST_VERSION}); upgrade pytest-inferlab")
    if data.get("status") not in (RUNNING, FINISHED, INTERRUPTED):
        raise RunFolderError(f"{path}: status {data.get('status')!r} is not one of {RUNNING}, {FINISHED}, {INTERRUPTED}")
    return data


def load_run(folder: Path) -> RunFolder:
    """Every record of the run in ``folder``, checked; RunFolderError names what is wrong."""
    from pytest_inferlab.record.record import RecordError, read_record, record_files

    if not folder.exists():
        raise RunFolderError(f"{folder}: no such folder (a run folder is .inferlab/runs/<run id>)")
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: not a folder (a run folder is .inferlab/runs/<run id>)")
    temps = sorted(p.name for p in folder.iterdir() if is_temp(p))
    if temps:
        raise RunFolderError(f"{folder / temps[0]}: a temporary file of a writer that did not finish: the run is "
                             "half-written (still running, or killed); wait for it, or re-run the suite")
    manifest = read_manifest(folder)
    if manifest is not None and manifest["status"] == RUNNING:
        raise RunFolderError(f"{folder / MANIFEST}: the run started {manifest.get('started_at')} has not finished "
                             "(still running, or killed before its end): its records are incomplete; wait for it, "
                             "or re-run the suite")
    paths = record_files(folder)
    if not paths:
        runs = folder / "runs" if (folder / "runs").is_dir() else folder
        children = sorted(p for p in runs.iterdir() if p.is_dir() and (p / MANIFEST).exists())
        hint = f"; it holds runs: pass one of them, e.g. {children[-1]}" if children else ""
        raise RunFolderError(f"{folder}: not a run: no records (*.json) in it (a run folder is "
                             f".inferlab/runs/<run id>){hint}")
    try:
        records = tuple(read_record(path) for path in paths)
    except RecordError as exc:
        raise RunFolderError(str(exc)) from None
    return RunFolder(folder, manifest, records)


LATEST = "latest"  # wherever a command takes a run folder: the newest run


@dataclass(frozen=True, slots=True)
class RunEntry:
    """One run of a results folder, as ``inferlab runs`` lists it (from its manifest alone)."""

    folder: Path
    started_at: str
    status: str
    records: int
    exit_status: int | None


def list_runs(results: Path) -> list[RunEntry]:
    """The runs under ``results`` (``.inferlab`` or its ``runs`` folder), oldest first (run ids begin
    with their UTC start time); a folder without a manifest counts its records."""
    from pytest_inferlab.record.record import record_files

    runs = results / "runs" if (results / "runs").is_dir() else results
    entries = []
    for folder in sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []:
        try:
            manifest = read_manifest(folder)
        except RunFolderError:
            manifest = {"status": "unreadable manifest"}
        records = len(record_files(folder))
        if manifest is None and not records:
            continue  # not a run
        manifest = manifest or {}
        entries.append(RunEntry(folder, str(manifest.get("started_at") or "-"), str(manifest.get("status", FINISHED)),
                                int(manifest.get("records", records)), manifest.get("exit_status")))
    return entries


def resolve_run(text: str | Path) -> Path:
    """A run folder as a command was given it: a path, or ``latest`` (the newest run of ./.inferlab)
    or ``RESULTS/latest`` (the newest under RESULTS); RunFolderError when there is none."""
    path = Path(text)
    if path.name != LATEST or path.exists():
        return path
    results = path.parent if str(path.parent) != "." else Path(".inferlab")
    runs = list_runs(results)
    if not runs:
        raise RunFolderError(f"{text}: no runs under {results} (a run folder is .inferlab/runs/<run id>)")
    return runs[-1].folder
