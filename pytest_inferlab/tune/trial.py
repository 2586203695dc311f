"""A trial: one configuration measured by pytest in a process of its own, read back from its record.

Every trial runs ``trial_suite.py`` in a new process (a build or a crash in one trial cannot touch
the next, and nothing of an earlier trial is in its memory), with its own results folder under the
study's, so its record, run folder and report are the lab's ordinary ones. A process that fails,
crashes or runs past its time comes back as a failed trial with its reason; nothing can hang.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from pytest_inferlab.ground.jsonio import write_json_replace, write_text_if_absent
from pytest_inferlab.record.record import Record
from pytest_inferlab.record.run_folder import RunFolderError, list_runs, load_run
from pytest_inferlab.specs.slo import Bound
from pytest_inferlab.tune.floor import BELOW, FLOOR_FILE, FloorCheck, no_data, reference_checks
from pytest_inferlab.tune.space import SPEED, Config, Floor, Space

SUITE = Path(__file__).with_name("trial_suite.py")
DEFAULT_TIMEOUT_S = 3600.0


@dataclass(frozen=True, slots=True)
class TrialPlan:
    """What one trial measures: ``config`` against the study's reference (``against`` None: the plain
    model) or against another configuration (the confirmation); ``incumbent`` stops it early."""

    id: str
    config: Config
    workload: str
    overrides: tuple[tuple[str, Any], ...] = ()
    against: Config | None = None
    incumbent: float | None = None
    floors: tuple[Floor, ...] = ()  # decided before any timing (trial_suite.py, floor_evidence.py)
    bounds: tuple[Bound, ...] = ()  # the study's SLOs: the trial stops once its rounds clearly violate one

    def to_dict(self, folder: Path | None = None) -> dict[str, Any]:
        return {"id": self.id, "config": self.config.to_dict(), "workload": self.workload,
                "overrides": dict(self.overrides), "against": self.against.to_dict() if self.against else None,
                "incumbent": self.incumbent, "folder": str(folder) if folder else None,
                "floors": [f.to_dict() for f in self.floors],
                "bounds": [{"metric": b.metric, "statistic": b.statistic, "limit": b.limit} for b in self.bounds]}


@dataclass(frozen=True, slots=True)
class Ratio:
    """A paired ratio to what the trial was measured against, with its interval."""

    value: float
    low: float
    high: float

    def words(self) -> str:
        return f"{self.value:.2f}x [{self.low:.2f}, {self.high:.2f}]"

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True, slots=True)
class TrialResult:
    """A trial's figures, read from its record; ``failed`` holds the reason when it measured nothing."""

    config: Config
    failed: str | None = None
    speed: Ratio | None = None  # output tokens/s over the reference's, paired
    objective: float | None = None
    slo: Mapping[str, float | None] = field(default_factory=dict)  # bound label -> the trial's figure
    floors: tuple[FloorCheck, ...] = ()
    memory_bytes: float | None = None  # weights (model_bytes), else the case's peak memory
    rounds: Mapping[str, Any] = field(default_factory=dict)
    record: str | None = None  # the record's path
    spec_id: str | None = None
    machine_id: str | None = None  # the record's machine: a study's trials come from one kind of machine

    def slo_met(self, bounds: Sequence[Bound]) -> bool:
        return all(self.slo.get(b.label) is not None and self.slo[b.label] <= b.limit for b in bounds)

    def violations(self, bounds: Sequence[Bound]) -> list[str]:
        out = []
        for bound in bounds:
            value = self.slo.get(bound.label)
            if value is None:
                out.append(f"{bound.metric} {bound.statistic}: not measured")
            elif value > bound.limit:
                out.append(f"{bound.metric} {bound.statistic} {value:.1f} > {bound.limit:g}")
        return out

    @property
    def floors_passed(self) -> bool:
        return all(check.passed for check in self.floors)

    def feasible(self, bounds: Sequence[Bound]) -> bool:
        return self.failed is None and self.slo_met(bounds) and self.floors_passed

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "label": self.config.label, "failed": self.failed,
                "speed": self.speed.to_dict() if self.speed else None, "objective": self.objective,
                "slo": dict(self.slo), "floors": [f.to_dict() for f in self.floors], "memory_bytes": self.memory_bytes,
                "rounds": dict(self.rounds), "record": self.record, "spec_id": self.spec_id,
                "machine_id": self.machine_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], space: Space) -> "TrialResult":
        """Back from a study's storage (the user attributes of a finished trial)."""
        speed = data.get("speed")
        floors = tuple(FloorCheck.from_dict(f) for f in data.get("floors") or ())
        return cls(Config.from_dict(data["config"]), data.get("failed"), Ratio(**speed) if speed else None,
                   data.get("objective"), data.get("slo") or {}, floors, data.get("memory_bytes"),
                   data.get("rounds") or {}, data.get("record"), data.get("spec_id"), data.get("machine_id"))


def run_trial(plan: TrialPlan, space: Space, folder: Path, pytest_args: Sequence[str],
              timeout_s: float = DEFAULT_TIMEOUT_S, reference: Config | None = None) -> TrialResult:
    """Measure ``plan`` in a pytest process whose results go under ``folder``; read its record back."""
    folder.mkdir(parents=True, exist_ok=True)
    plan_file = folder / "plan.json"
    write_json_replace(plan_file, plan.to_dict(folder))
    (folder / FLOOR_FILE).unlink(missing_ok=True)  # a re-run decides its floors afresh
    ini = folder / "pytest.ini"
    write_text_if_absent(ini, "[pytest]\n")  # the user's own ini file (addopts, markers) stays out of a trial
    command = [sys.executable, "-m", "pytest", str(SUITE), f"--inferlab-tune-trial={plan_file}", "-c", str(ini),
               f"--rootdir={folder}", f"--inferlab-results={folder}", f"--inferlab-baselines={folder / 'baselines'}",
               "--inferlab-no-gate", "-p", "no:cacheprovider", "-q", "-rfEs", *pytest_args]
    log = folder / "pytest.log"
    code = _run(command, log, timeout_s)
    floors = _floors(plan, space, folder, reference)
    if code == 0 and any(check.outcome == BELOW for check in floors):  # below a floor: not timed
        return TrialResult(plan.config, floors=floors, rounds={"stopped": "below the accuracy floor before timing"})
    runs = list_runs(folder)
    if not runs:
        return TrialResult(plan.config, failed=_reason(log, code, timeout_s), floors=floors)
    try:
        run = load_run(runs[-1].folder)
    except RunFolderError as exc:
        return TrialResult(plan.config, failed=f"its run folder does not read: {exc}")
    if not run.records or code not in (0, 1):
        return TrialResult(plan.config, failed=_reason(log, code, timeout_s), floors=floors)
    record = run.records[0]
    if code == 1:  # the case ran and failed (e.g. its outputs diverged): its record says why
        return TrialResult(plan.config, failed=_reason(log, code, timeout_s), floors=floors,
                           record=str(runs[-1].folder))
    return result_of(record, plan.config, space, str(runs[-1].folder), floors,
                     same_as_reference=plan.config == reference)


def _floors(plan: TrialPlan, space: Space, folder: Path, reference: Config | None) -> tuple[FloorCheck, ...]:
    """The floors as the trial decided them before timing (its floor file); the study's reference
    meets them by definition; a floor the trial did not decide (it crashed first) has no data."""
    if plan.config == reference:
        return reference_checks(space.floors)
    path = folder / FLOOR_FILE
    if not plan.floors:
        return ()
    if not path.is_file():
        return tuple(no_data(floor, "the trial ended before deciding it") for floor in plan.floors)
    return tuple(FloorCheck.from_dict(check) for check in json.loads(path.read_text(encoding="utf-8")))


def result_of(record: Record, config: Config, space: Space, where: str,
              floors: tuple[FloorCheck, ...] = (), same_as_reference: bool = False) -> TrialResult:
    """A trial's figures from its record (as read) and its floors as decided before timing."""
    def stat(metric: str, statistic: str) -> float | None:
        found = record.measurements.get(metric)
        return getattr(found, statistic) if found is not None else None

    speed = None
    found = record.measurements.get("speedup_vs_reference")
    if found is not None and found.value is not None and found.ci95:
        speed = Ratio(found.value, found.ci95[0], found.ci95[1])
    elif same_as_reference:  # the reference measured against itself: 1 by definition
        speed = Ratio(1.0, 1.0, 1.0)
    if space.objective == SPEED:
        objective = speed.value if speed else None
    else:
        objective = stat(space.objective, "value")
    memory = stat("model_bytes", "value") or stat("peak_mem_bytes", "value")
    return TrialResult(config, None, speed, objective, {b.label: stat(b.metric, b.statistic) for b in space.slo},
                       floors, memory, record.conditions.get("rounds") or {}, where, record.spec_id, record.machine_id)


def _run(command: list[str], log: Path, timeout_s: float) -> int:
    """The trial's process, its output in ``log``; past ``timeout_s`` its whole process group is killed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "4000"}  # pytest's summary lines whole
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return -1
        except BaseException:  # interrupted: the trial's process group goes with the study
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise


def _reason(log: Path, code: int, timeout_s: float) -> str:
    """The failure as pytest summarized it (its short summary line), else the log's last line."""
    if code == -1:
        return f"ran past {timeout_s:.0f} s (--trial-timeout); its process group was killed"
    lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    summary = [line for line in lines if line.startswith(("FAILED", "ERROR", "SKIPPED"))]
    last = summary[0].split(" - ", 1)[-1].removeprefix("Failed: ") if summary else (lines[-1] if lines else "no output")
    return f"exit status {code}: {last[:400]} (log: {log})"
