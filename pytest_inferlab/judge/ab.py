"""The verdicts of an A/B run: each shared case's records from both sides, paired round by round.
Pure: records in (their JSON form), verdicts out.

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


def _by_test(records: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {r["test_id"]: r for r in records}


def _series(record: Mapping[str, Any], tolerance: Mapping[str, float]) -> dict[str, Any]:
    values = record.get("round_values") or {}
    policies = policies_for(sorted(values), tolerance, {})
    return {name: policy for name, policy in policies.items() if policy.kind == TIMING}


def _invalid(base: Mapping[str, Any], candidate: Mapping[str, Any]) -> str | None:
    reasons = [f"{side}: {(r.get('conditions') or {}).get('invalid')}" for side, r in (("base", base), ("candidate", candidate))
               if (r.get("conditions") or {}).get("invalid")]
    return "; ".join(reasons) or None


def compare_sides(base: Sequence[Mapping[str, Any]], candidate: Sequence[Mapping[str, Any]], family_alpha: float,
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
        invalid = _invalid(b, c)
        verdicts = []
        for name in sorted(series[test_id]):
            bv, cv = b["round_values"][name], c["round_values"][name]
            pairs = min(len(bv), len(cv))
            verdicts.append(judge_paired(policies[test_id][name], bv[:pairs], cv[:pairs], alpha, invalid, against="base"))
        cases.append(CaseComparison(test_id, c["spec_id"], verdicts))
    return Comparison(True, cases, [t for t in base_by if t not in cand_by], [t for t in cand_by if t not in base_by],
                      alpha)
