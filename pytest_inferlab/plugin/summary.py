"""End-of-run hooks: collect each case's report row, save baselines, draw the trade-off and
latency-throughput summaries, export to asv, close the run's manifest, write report.html, and print
it all in the terminal summary, ending with the findings table.

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
from pytest_inferlab.record.record import RecordError, read_record
from pytest_inferlab.record.run_folder import finish_manifest, pytest_command
from pytest_inferlab.record.store import RecordStore


class Summary:
    """What the run reports at its end; ``reports`` is False in xdist workers and fresh-process children
    (the controller reports for them)."""

    def __init__(self, settings: Settings, store: RecordStore, baselines: BaselineStore, reports: bool) -> None:
        self.settings, self.store, self.baselines, self.reports = settings, store, baselines, reports
        self.rows: list[dict[str, Any]] = []
        self.verdict_rows: list[dict[str, Any]] = []
        self.asv_lines: list[str] = []
        self.baseline_lines: list[str] = []  # what --inferlab-save-baseline saved and left out
        self.tradeoff_lines: list[str] = []
        self.curve_lines: list[str] = []
        self.change_lines: list[str] = []  # change points of this run's cases over their stored history
        self.findings_lines: list[str] = []  # each optimization against its reference (outputs/findings.py)
        self.report_line = ""
        self.failures: list[dict[str, str]] = []  # the manifest's, for report.html's first lines

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            lines = [line for line in (report.longreprtext or "").splitlines() if line.strip()]
            reason = next((line for line in lines if line.startswith("E ")), lines[0] if lines else "failed")
            self.failures.append({"nodeid": report.nodeid, "when": report.when, "reason": reason.removeprefix("E ").strip()})
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == REPORT_KEY:
                self.rows.append(value)
            elif key == VERDICT_KEY:
                self.verdict_rows.extend(value)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.reports or not self.store.folder.is_dir():
            return
        finish_manifest(self.store.folder, self.store.folder.name, pytest_command(), int(exitstatus),
                        interrupted=exitstatus == pytest.ExitCode.INTERRUPTED, failures=self.failures)
        from pytest_inferlab.outputs.asv_export import export, find_records

        records = find_records(self.store.folder)
        if self.settings.save_baseline:
            self._save_baselines(session, records)
        if self.settings.asv is not None:
            from pytest_inferlab.outputs.asv_changes import change_point_lines

            summary = export(records, self.settings.asv, warn=lambda text: None)
            self.asv_lines = [f"{summary.line()} -> {self.settings.asv}"] + [f"  skipped {s}" for s in summary.skipped]
            self.asv_lines += change_point_lines(self.settings.asv)
        self.change_lines = history_change_points(self.baselines, records)
        self._findings_and_report()

    def _findings_and_report(self) -> None:
        """The trade-off and latency-throughput tables, the findings table and report.html, from the run's
        records read back once (a report is never half-built: a run whose records cannot be read says
        why, naming the file, instead of any of them)."""
        from pytest_inferlab.outputs.curves import curves_summary
        from pytest_inferlab.outputs.findings import findings_of
        from pytest_inferlab.outputs.findings_table import format_findings
        from pytest_inferlab.outputs.html_report import write_report
        from pytest_inferlab.outputs.pareto import tradeoff_summary
        from pytest_inferlab.record.run_folder import RunFolderError, load_run

        try:
            run = load_run(self.store.folder)
        except RunFolderError as exc:
            self.report_line = f"report: not written: {exc}"
            return
        self.tradeoff_lines = _with_plot(*tradeoff_summary(self.store.folder, run.records))
        self.curve_lines = _with_plot(*curves_summary(self.store.folder, run.records))
        self.findings_lines = format_findings(findings_of(run.records))
        self.report_line = f"report: {write_report(self.store.folder, run)}"

    def _save_baselines(self, session: pytest.Session, record_paths: list[Path]) -> None:
        """--inferlab-save-baseline: this run's valid records, all saved or none (as save-baseline)."""
        try:
            report = save_valid(self.baselines, [read_record(path) for path in record_paths])
        except (BaselineError, RecordError) as exc:
            self.baseline_lines = [f"baselines: nothing saved: {exc}"]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        self.baseline_lines = report.lines()

    @pytest.hookimpl(trylast=True)  # after pytest-benchmark's table: the findings are the run's last word
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in self.asv_lines + self.baseline_lines:
            terminalreporter.write_line(line)
        if not self.rows:
            return
        sections = [("inferlab results", format_table(self.rows) + [f"records: {self.store.folder}"]),
                    ("inferlab quantization trade-off (ratios to fp32 of the same batch)", self.tradeoff_lines),
                    ("inferlab latency-throughput", self.curve_lines),
                    ("inferlab verdicts", format_verdict_summary(self.verdict_rows) if self.verdict_rows else []),
                    ("inferlab change points (stored history + this run)", self.change_lines),
                    ("inferlab findings: each optimization against its reference",
                     self.findings_lines + ([self.report_line] if self.report_line else []))]
        for title, lines in sections:
            if lines:
                terminalreporter.write_sep("=", title)
                for line in lines:
                    terminalreporter.write_line(line)


def _with_plot(table: list[str], png: Path | None, why_not: str | None) -> list[str]:
    return table + [f"plot: {png}" if png else why_not or ""] if table else []


def history_change_points(baselines: BaselineStore, record_paths: list[Path]) -> list[str]:
    """Change points of each case's stored history (this machine's) with this run appended: shown when
    some series has enough runs to tell."""
    from pytest_inferlab.judge.changepoints import MIN_POINTS, ChangePointsUnavailable, detect_all, summary_lines
    from pytest_inferlab.record.series import RunPoint, RunSeries

    series = []
    for path in record_paths:
        try:
            record = read_record(path)
            baseline = baselines.load(record.machine_id, record.test_id, record.spec_id)
        except (RecordError, BaselineError):
            continue  # the case reported its unreadable baseline already
        if baseline is None:
            continue
        for metric, measurement in sorted(record.measurements.items()):
            history = (baseline.data["metrics"].get(metric) or {}).get("history", [])
            points = [RunPoint(run.get("run_id", ""), run.get("commit"), run["value"]) for run in history
                      if run.get("value") is not None and run.get("run_id") != record.run_id]
            if measurement.value is not None:
                points.append(RunPoint(record.run_id, record.commit, measurement.value))
            series.append(RunSeries(record.machine_id, record.test_id, metric, tuple(points)))
    if not any(len(s.points) >= MIN_POINTS for s in series):
        return []
    try:
        return summary_lines(detect_all(series))
    except ChangePointsUnavailable as exc:
        return [f"change points: not computed ({exc})"]
