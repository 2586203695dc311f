"""The verdicts of an A/B run: each shared case's records from both sides, paired round by round.
Pure: records in (as read, typed), verdicts out.

Every timing metric of every shared case is one series; the run's false-alarm budget is split
over all of them (Bonferroni), as the gate does for history verdicts.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from pytest_inferlab.judge.comparison import CaseComparison, Comparison
from pytest_inferlab.judge.paired import judge_paired
from pytest_inferlab.judge.policy import policies_for
from pytest_inferlab.judge.verdict import bonferroni_alpha
from pytest_inferlab.measure.catalog import TIMING
from pytest_inferlab.record.record import Record


def _by_test(records: Sequence[Record]) -> dict[str, Record]:
    return {r.test_id: r for r in records}


def _series(record: Record, tolerance: Mapping[str, float]) -> dict[str, Any]:
    policies = policies_for(sorted(record.round_values), tolerance, {})
    return {name: policy for name, policy in policies.items() if policy.kind == TIMING}


def invalid_sides(first: Record, second: Record, names: tuple[str, str]) -> str | None:
    """Why either side's record is invalid (``conditions.invalid``), each reason named by its side."""
    reasons = [f"{side}: {r.conditions['invalid']}" for side, r in zip(names, (first, second))
               if r.conditions.get("invalid")]
    return "; ".join(reasons) or None


def compare_sides(base: Sequence[Record], candidate: Sequence[Record], family_alpha: float,
                  tolerance: Mapping[str, float] | None = None) -> Comparison:
    """Verdicts for every case both sides recorded; the candidate's order."""
    tolerance = tolerance or {}
    base_by, cand_by = _by_test(base), _by_test(candidate)
    shared = [t for t in cand_by if t in base_by]
    policies = {t: _series(cand_by[t], tolerance) for t in shared}
    series = {t: policies[t].keys() & _series(base_by[t], tolerance).keys() for t in shared}
    alpha = bonferroni_alpha(family_alpha, sum(len(names) for names in series.values()))
    cases = []
    for test_id in shared:
        b, c = base_by[test_id], cand_by[test_id]
        invalid = invalid_sides(b, c, ("base", "candidate"))
        verdicts = []
        for name in sorted(series[test_id]):
            bv, cv = b.round_values[name], c.round_values[name]
            pairs = min(len(bv), len(cv))
            verdicts.append(judge_paired(policies[test_id][name], bv[:pairs], cv[:pairs], alpha, invalid, against="base"))
        cases.append(CaseComparison(test_id, c.spec_id, verdicts))
    return Comparison(True, cases, [t for t in base_by if t not in cand_by], [t for t in cand_by if t not in base_by],
                      alpha)
