"""--inferlab-fresh-process: every case measured in a new Python process (the isolation
optimum-benchmark offers), for users who want cold-process figures whatever ran before.

The controller runs each collected item as ``python -m pytest <path::test>`` with the run's own
options; the child joins the run (its run id and the gate's series count come in the environment),
writes its record into the run folder, and hands back its test reports (pytest's own
``pytest_report_to_serializable`` form), which the controller reports as its own. A child that
dies (a segfault in a native library) fails its case with the child's exit status and output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHILD_ENV = "INFERLAB_FRESH_CHILD"
SELECTION_OPTIONS = ("-k", "-m", "--deselect")  # they select among the run's items: the child gets one item
CHILD_TIMEOUT_S = 3600.0


@dataclass(frozen=True, slots=True)
class FreshChild:
    """What a child of a fresh-process run was told: the run to join, where its reports go, the gate's
    series count (the false-alarm budget is the whole run's, not the child's one case)."""

    run_id: str
    reports: str
    series: int

    @classmethod
    def from_env(cls) -> "FreshChild | None":
        raw = os.environ.get(CHILD_ENV)
        return cls(**json.loads(raw)) if raw else None

    def env(self) -> dict[str, str]:
        return {CHILD_ENV: json.dumps({"run_id": self.run_id, "reports": self.reports, "series": self.series})}


def child_args(invocation: tuple[str, ...], positional: list[str]) -> list[str]:
    """The run's own arguments without what selected its items (paths, @files, -k/-m/--deselect)."""
    out: list[str] = []
    skip = False
    for arg in invocation:
        if skip:
            skip = False
        elif arg in SELECTION_OPTIONS:
            skip = True
        elif arg.startswith("@") or arg in positional or any(arg.startswith(o + "=") for o in SELECTION_OPTIONS):
            continue
        else:
            out.append(arg)
    return out


class FreshProcesses:
    """The controller's side: one child process per item."""

    def __init__(self, config: pytest.Config, run_id: str, series: Any) -> None:
        self.config = config
        self.run_id = run_id
        self.series = series  # a callable: the gate's series count, known after collection

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool:
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        for report in self._run(item):
            item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def _run(self, item: pytest.Item) -> list[pytest.TestReport]:
        params = self.config.invocation_params
        args = child_args(tuple(params.args), [str(a) for a in self.config.args])
        target = f"{self.config.rootpath / item.nodeid.split('::', 1)[0]}::{item.nodeid.split('::', 1)[1]}"
        with tempfile.TemporaryDirectory(prefix="inferlab-fresh-") as folder:
            reports = Path(folder) / "reports.jsonl"
            child = FreshChild(self.run_id, str(reports), int(self.series()))
            command = [sys.executable, "-m", "pytest", target, *args, "-p", "no:cacheprovider", "-p", "no:terminal"]
            try:
                done = subprocess.run(command, cwd=params.dir, env={**os.environ, **child.env()}, timeout=CHILD_TIMEOUT_S,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                output, code = done.stdout.decode(errors="replace"), done.returncode
            except subprocess.TimeoutExpired as exc:
                output, code = (exc.output or b"").decode(errors="replace"), None
            found = [self.config.hook.pytest_report_from_serializable(config=self.config, data=json.loads(line))
                     for line in reports.read_text().splitlines()] if reports.exists() else []
        sys.stderr.write(output)  # the child's progress lines (its terminal reporter is off)
        if not any(r.when == "call" or r.failed or r.skipped for r in found):
            why = f"timed out after {CHILD_TIMEOUT_S:.0f} s" if code is None else (
                f"died with signal {-code}" if code < 0 else f"exited with status {code}")
            found.append(pytest.TestReport(item.nodeid, item.location, {}, "failed",
                                           f"the fresh process of this case {why} before it reported:\n{output[-4000:]}",
                                           "call"))
        return found


class ChildReports:
    """The child's side: every test report, serialized by pytest's own hook, for the controller."""

    def __init__(self, config: pytest.Config, path: str) -> None:
        self.config = config
        self.path = Path(path)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(data) + "\n")
