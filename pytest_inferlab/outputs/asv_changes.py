"""Change points beside the asv export: every series of an asv results tree (machine, benchmark,
parameter combination; ordered by commit date) through judge/changepoints.py, written as
``change_points.json`` next to the results folder and summarized in lines."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

from pytest_inferlab.judge.changepoints import ChangePointsUnavailable, SeriesChanges, detect_all, summary_lines
from pytest_inferlab.judge.policy import MetricPolicy, policy_of
from pytest_inferlab.measure.catalog import catalog
from pytest_inferlab.outputs.asv_export import INVERTED, RESULTS_API_VERSION, load_cells, read_asv_file
from pytest_inferlab.ground.jsonio import write_json_replace
from pytest_inferlab.record.series import RunPoint, RunSeries

CHANGE_POINTS_FILE = "change_points.json"


def published_policy(benchmark: str) -> MetricPolicy:
    """The policy of an asv benchmark (``<test>.<form>``): its metric's, lower-is-better for inverted forms."""
    for metric, form in INVERTED.items():
        if benchmark.endswith(f".{form.name}"):
            return dataclasses.replace(policy_of(metric), name=form.name, higher_is_better=False)
    metric = max((m for m in catalog.names() if benchmark.endswith(f".{m}")), key=len, default=benchmark)
    return policy_of(metric)


def asv_series(results: Path) -> list[RunSeries]:
    """One series per machine, benchmark and parameter combination, oldest commit first."""
    points: dict[tuple[str, str, tuple[str, ...]], list[tuple[int, RunPoint]]] = defaultdict(list)
    for machine in sorted(p for p in results.iterdir() if p.is_dir()):
        for path in sorted(machine.glob("*.json")):
            if path.name == "machine.json":
                continue
            data = read_asv_file(path, RESULTS_API_VERSION) or {}
            for name, (_, cells, _) in load_cells(data).items():
                for combo, cell in cells.items():
                    points[(machine.name, name, combo)].append(
                        (int(data.get("date") or 0), RunPoint(path.stem, data.get("commit_hash"), cell.value)))
    return [RunSeries(machine, f"{name}[{', '.join(combo)}]" if combo else name, name,
                      tuple(point for _, point in sorted(found, key=lambda item: item[0])))
            for (machine, name, combo), found in sorted(points.items())]


def write_change_points(results: Path) -> tuple[list[SeriesChanges], Path]:
    """Detect over the whole asv history and write ``change_points.json`` beside ``results``."""
    found = detect_all(asv_series(results), policy_for=published_policy)
    target = results.parent / CHANGE_POINTS_FILE
    write_json_replace(target, [change.to_json() for change in found])
    return found, target


def change_point_lines(results: Path) -> list[str]:
    """What an export prints: the labels over the whole history, and where they were written."""
    try:
        found, path = write_change_points(results)
    except (ChangePointsUnavailable, ValueError) as exc:
        return [f"change points: not computed ({exc})"]
    return summary_lines(found) + [f"change points written: {path}"]
