"""End-of-run hooks: collect each case's report row, save baselines, draw the trade-off and
latency-throughput summaries, export to asv, and print it all in the terminal summary.

The controller does all of it once for every xdist worker: rows travel in each report's
``user_properties``; records are read back from the run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_inferlab.outputs.report import format_table, format_verdict_summary
from pytest_inferlab.plugin.options import Settings
from pytest_inferlab.plugin.recorder import REPORT_KEY, VERDICT_KEY
from pytest_inferlab.record.baselines import BaselineError, BaselineStore, save_valid
from pytest_inferlab.record.record import RecordError, load_record
from pytest_inferlab.record.store import RecordStore


class Summary:
    """What the run reports at its end; ``worker_id`` is set in xdist workers (which report nothing)."""

    def __init__(self, settings: Settings, store: RecordStore, baselines: BaselineStore, worker_id: str | None) -> None:
        self.settings, self.store, self.baselines, self.worker_id = settings, store, baselines, worker_id
        self.rows: list[dict[str, Any]] = []
        self.verdict_rows: list[dict[str, Any]] = []
        self.asv_lines: list[str] = []
        self.baseline_lines: list[str] = []  # what --inferlab-save-baseline saved and left out
        self.tradeoff_lines: list[str] = []
        self.curve_lines: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == REPORT_KEY:
                self.rows.append(value)
            elif key == VERDICT_KEY:
                self.verdict_rows.extend(value)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.worker_id is not None or not self.store.folder.is_dir():
            return
        from pytest_inferlab.measure.curves import curves_summary
        from pytest_inferlab.outputs.asv_export import export, find_records
        from pytest_inferlab.outputs.pareto import tradeoff_summary

        records = find_records(self.store.folder)
        if self.settings.save_baseline:
            self._save_baselines(session, records)
        self.tradeoff_lines = _with_plot(*tradeoff_summary(self.store.folder, records))
        self.curve_lines = _with_plot(*curves_summary(self.store.folder, records))
        if self.settings.asv is not None:
            summary = export(records, self.settings.asv, warn=lambda text: None)
            self.asv_lines = [f"{summary.line()} -> {self.settings.asv}"] + [f"  skipped {s}" for s in summary.skipped]

    def _save_baselines(self, session: pytest.Session, record_paths: list[Path]) -> None:
        """--inferlab-save-baseline: this run's valid records, all saved or none (as save-baselines)."""
        try:
            report = save_valid(self.baselines, [load_record(path) for path in record_paths])
        except (BaselineError, RecordError) as exc:
            self.baseline_lines = [f"baselines: nothing saved: {exc}"]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        self.baseline_lines = report.lines()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in self.asv_lines + self.baseline_lines:
            terminalreporter.write_line(line)
        if not self.rows:
            return
        sections = [("inferlab results", format_table(self.rows) + [f"records: {self.store.folder}"]),
                    ("inferlab quantization trade-off (ratios to fp32 of the same batch)", self.tradeoff_lines),
                    ("inferlab latency-throughput", self.curve_lines),
                    ("inferlab verdicts", format_verdict_summary(self.verdict_rows) if self.verdict_rows else [])]
        for title, lines in sections:
            if lines:
                terminalreporter.write_sep("=", title)
                for line in lines:
                    terminalreporter.write_line(line)


def _with_plot(table: list[str], png: Path | None, why_not: str | None) -> list[str]:
    return table + [f"plot: {png}" if png else why_not or ""] if table else []
