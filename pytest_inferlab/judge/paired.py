"""Paired verdicts: a candidate judged against a base measured in alternating rounds (inferlab ab).
Pure functions: no I/O, no pytest.

The ratio and its interval come from measure/paired.py (per-pair log ratios, a t interval); the
five outcomes follow from the interval exactly as for history verdicts (verdict.py: ``classify``):
regressed only when the whole interval is beyond the tolerance in the bad direction.
"""

from __future__ import annotations

import math
import statistics
from typing import Sequence

from pytest_inferlab.judge.policy import MetricPolicy
from pytest_inferlab.judge.verdict import Verdict, classify
from pytest_inferlab.measure.paired import MIN_PAIRS, paired_ratio


def judge_paired(policy: MetricPolicy, reference: Sequence[float], candidate: Sequence[float], alpha: float,
                 invalid: str | None = None, against: str = "reference") -> Verdict:
    """One timing metric of a candidate against its reference (``against`` names it), paired round by round."""
    tol = policy.tolerance
    current = statistics.median(candidate) if candidate else None
    base = statistics.median(reference) if reference else None
    if invalid:
        return Verdict(policy.name, "invalid", current, base, None, None, tol, invalid)
    found = paired_ratio(reference, candidate, alpha)
    if found is None:
        return Verdict(policy.name, "inconclusive", current, base, None, None, tol,
                       f"{min(len(reference), len(candidate))} usable pair(s) of rounds; a paired interval needs "
                       f">= {MIN_PAIRS} (raise --inferlab-rounds)")
    low, high = (math.log(v) for v in found.interval)
    outcome = classify(low, high, policy)
    reason = (f"{found.ratio:.3f}x {against} over {found.pairs} interleaved pairs, interval "
              f"[{found.interval[0]:.3f}, {found.interval[1]:.3f}] at alpha {alpha:.2g}; tolerance {tol:.0%}; "
              f"pair-to-pair noise {found.spread:.1%}")
    return Verdict(policy.name, outcome, current, base, found.ratio, found.interval, tol, reason)
