"""Series of runs for change-point detection, read from a baselines folder (each case's per-run history)
or from records (what an asv export holds): one series per machine, case and metric, oldest first."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from pytest_inferlab.record.baselines import parse_baseline  # its errors name the file
from pytest_inferlab.ground.jsonio import is_temp
from pytest_inferlab.record.record import read_record


@dataclass(frozen=True, slots=True)
class RunPoint:
    """One run's value of one metric."""

    run_id: str
    commit: str | None
    value: float


@dataclass(frozen=True, slots=True)
class RunSeries:
    machine_id: str
    test_id: str
    metric: str
    points: tuple[RunPoint, ...]  # oldest first


def series_from_baselines(root: Path) -> list[RunSeries]:
    """Every metric history of every baseline under ``root`` (``baselines/<machine>/<case>.json``)."""
    found = []
    for path in sorted(p for p in root.glob("*/*.json") if not is_temp(p)):
        data = parse_baseline(path)
        for metric, entry in sorted(data["metrics"].items()):
            points = tuple(RunPoint(run.get("run_id", ""), run.get("commit"), float(run["value"]))
                           for run in entry.get("history", []) if run.get("value") is not None)
            found.append(RunSeries(path.parent.name, data.get("test_id", path.stem), metric, points))
    return found


def series_from_records(paths: Iterable[Path]) -> list[RunSeries]:
    """Records of many runs, one series per machine, case and metric, in the order the runs started."""
    records = sorted((read_record(path) for path in paths), key=lambda r: r.started_at)
    grouped: dict[tuple[str, str, str], list[RunPoint]] = defaultdict(list)
    for record in records:
        commit = record.commit
        for metric, measurement in sorted(record.measurements.items()):
            if measurement.value is not None:
                grouped[(record.machine_id, record.test_id, metric)].append(
                    RunPoint(record.run_id, commit, float(measurement.value)))
    return [RunSeries(machine, test_id, metric, tuple(points)) for (machine, test_id, metric), points in sorted(grouped.items())]
