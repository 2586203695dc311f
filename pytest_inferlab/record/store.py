"""The record store: one file per case under ``<results>/runs/<run_id>/``."""

from __future__ import annotations

from pathlib import Path

from pytest_inferlab.record.naming import record_filename
from pytest_inferlab.ground.jsonio import write_json_new, write_text_if_absent
from pytest_inferlab.record.packages import lock_state, packages_txt
from pytest_inferlab.record.record import Record


class RecordStore:
    """``<results>/runs/<run_id>/<test slug>-<spec_id>.json``, one file per case."""

    def __init__(self, results_dir: Path, run_id: str) -> None:
        self.folder = results_dir / "runs" / run_id

    def write(self, record: Record) -> Path:
        return write_json_new(self.folder / record_filename(record.test_id, record.spec_id), record.to_json())

    def write_packages(self, root: Path) -> None:
        """``packages.txt``: every installed package of the run, installable with pip (kept if present)."""
        write_text_if_absent(self.folder / "packages.txt", packages_txt(lock_state(root)))
