"""Change points in nightly history: where a series of runs shifted, and whether for the worse.

Detection is Hunter's E-Divisive means with a Student t significance test (Fleming et al.,
"Hunter: Using Change Point Detection to Hunt for Performance Regressions", ICPE 2023), through
Apache Otava (``otava.analysis.compute_change_points``: a split step over sliding windows at a
relaxed p-value gives "weak" change points; a merge step keeps those significant at ``MAX_PVALUE``
and larger than the metric's tolerance). Each judged series is labelled:

- ``regression``: its latest kept change point moved it in the bad direction;
- ``improvement``: its latest kept change point moved it in the good direction;
- ``suspicious``: no kept change point for the worse, but a weak one (significant only at the
  relaxed level, or smaller than the tolerance) for the worse;
- ``no change``; ``insufficient data``: fewer than ``MIN_POINTS`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pytest_inferlab.judge.policy import MetricPolicy, policy_of
from pytest_inferlab.measure.catalog import INFO
from pytest_inferlab.record.series import RunSeries

MIN_POINTS = 6
MAX_PVALUE = 0.001  # Hunter's default
FIRST_PASS_PVALUE = 10 * MAX_PVALUE  # the split step's relaxed level (Otava's compute_change_points uses 10x)
WINDOW = 50  # points per sliding window of the split step (Otava's default)
LABELS = ("regression", "suspicious", "improvement", "no change", "insufficient data")


class ChangePointsUnavailable(RuntimeError):
    """Apache Otava is not installed."""


@dataclass(frozen=True, slots=True)
class Shift:
    index: int  # first run of the new level
    run_id: str
    commit: str | None
    before: float  # mean of the segment before
    after: float  # mean of the segment after
    pvalue: float
    worse: bool

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else float("inf")

    def line(self) -> str:
        where = f"commit {self.commit[:8]}" if self.commit else f"run {self.run_id}"
        return f"{self.ratio:.3f}x at {where} (run {self.index + 1}; {self.before:.4g} -> {self.after:.4g}, p={self.pvalue:.2g})"


@dataclass(frozen=True, slots=True)
class SeriesChanges:
    series: RunSeries
    label: str
    shifts: tuple[Shift, ...]  # kept by the merge step, oldest first
    weak: tuple[Shift, ...]  # found by the split step only

    def to_json(self) -> dict[str, Any]:
        s = self.series
        return {"machine_id": s.machine_id, "test_id": s.test_id, "metric": s.metric, "runs": len(s.points),
                "label": self.label, "shifts": [_shift_json(x) for x in self.shifts],
                "weak": [_shift_json(x) for x in self.weak]}

    def line(self) -> str:
        s = self.series
        latest = (self.shifts or self.weak)[-1:] if self.label not in ("no change", "insufficient data") else ()
        detail = f": {latest[0].line()}" if latest else f" ({len(s.points)} runs)"
        return f"{self.label:<12} {s.test_id} {s.metric}{detail}"


def _shift_json(shift: Shift) -> dict[str, Any]:
    return {"index": shift.index, "run_id": shift.run_id, "commit": shift.commit, "before": shift.before,
            "after": shift.after, "ratio": shift.ratio, "pvalue": shift.pvalue, "worse": shift.worse}


def _compute(values: list[float], tolerance: float) -> tuple[list[Any], list[Any]]:
    """(kept, weak) change points: Otava's two steps, as its ``compute_change_points`` runs them, with
    two differences (seen in 0.8.0): the merge step gets a copy (it deletes from its list in place, so
    the weak points ``compute_change_points`` returns are the kept ones), and the kept points' statistics
    are recomputed over the final segments (merge leaves the left neighbour of a dropped point with the
    means of a segment that no longer exists), as ``split`` itself does at its end."""
    try:
        from otava.analysis import TTestSignificanceTester, merge, split
    except ImportError as exc:
        raise ChangePointsUnavailable("change points need Apache Otava: pip install --no-deps apache-otava==0.8.0 "
                                      "(make install does)") from exc
    weak = split(values, window_len=WINDOW, max_pvalue=FIRST_PASS_PVALUE)
    kept = merge(list(weak), values, MAX_PVALUE, tolerance)
    tester = TTestSignificanceTester(MAX_PVALUE)
    segments = tester.get_intervals(kept)
    return [tester.change_point(point.to_candidate(), values, segments) for point in kept], list(weak)


def _shift(point: Any, series: RunSeries, policy: MetricPolicy) -> Shift:
    run = series.points[point.index]
    before, after = float(point.stats.mean_1), float(point.stats.mean_2)
    worse = after < before if policy.higher_is_better else after > before
    return Shift(int(point.index), run.run_id, run.commit, before, after, float(point.stats.pvalue), worse)


def detect(series: RunSeries, policy: MetricPolicy) -> SeriesChanges:
    if len(series.points) < MIN_POINTS:
        return SeriesChanges(series, "insufficient data", (), ())
    kept, weak = _compute([p.value for p in series.points], policy.tolerance)
    shifts = tuple(_shift(p, series, policy) for p in kept)
    kept_at = {s.index for s in shifts}
    weak_shifts = tuple(_shift(p, series, policy) for p in weak if p.index not in kept_at)
    if shifts:
        label = "regression" if shifts[-1].worse else "improvement"
    elif any(s.worse for s in weak_shifts):
        label = "suspicious"
    else:
        label = "no change"
    return SeriesChanges(series, label, shifts, weak_shifts)


def detect_all(series: Sequence[RunSeries], policy_for: Callable[[str], MetricPolicy] = policy_of
               ) -> list[SeriesChanges]:
    """Every series of a judged metric (timing, deterministic, count), worst label first."""
    found = []
    for one in series:
        policy = policy_for(one.metric)
        if policy.kind != INFO:
            found.append(detect(one, policy))
    return sorted(found, key=lambda c: (LABELS.index(c.label), c.series.test_id, c.series.metric))


def summary_lines(changes: Sequence[SeriesChanges], show: Sequence[str] = ("regression", "suspicious", "improvement")
                  ) -> list[str]:
    """Counts per label, then one line per series whose label is in ``show``."""
    counts = {label: sum(c.label == label for c in changes) for label in LABELS}
    lines = ["change points: " + ", ".join(f"{n} {label}" for label, n in counts.items() if n)]
    return lines + [c.line() for c in changes if c.label in show]
