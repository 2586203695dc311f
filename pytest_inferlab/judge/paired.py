"""Paired comparisons: two sides measured round by round, close together, judged on the per-pair
ratios. Pure functions: no I/O, no pytest.

A shared machine's speed drifts by tens of percent over minutes; two sides measured at different
times differ by that drift. Measured in alternating rounds (A B B A A B ...), each pair of rounds
sees the same machine, so the per-pair log ratio cancels the slow drift:

    d_i  = log(candidate_i) - log(reference_i)       one per pair of adjacent rounds
    d    = mean(d_i),  se = stdev(d_i) / sqrt(n)
    interval = d +/- t(1 - alpha, n - 1) * se        (a one-sided test at alpha on each side)

and the five outcomes follow from the interval exactly as for history verdicts (verdict.py:
``classify``): regressed only when the whole interval is beyond the tolerance in the bad direction.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

from pytest_inferlab.judge.policy import MetricPolicy
from pytest_inferlab.judge.verdict import Verdict, classify, t_quantile

MIN_PAIRS = 3  # fewer pairs give no usable estimate of the pairs' spread


@dataclass(frozen=True, slots=True)
class PairedRatio:
    """candidate / reference over pairs of adjacent rounds."""

    ratio: float  # geometric mean of the per-pair ratios
    interval: tuple[float, float]  # of the ratio, two-sided at 1 - 2 alpha
    pairs: int
    spread: float  # stdev of the per-pair log ratios (~ relative noise of one pair)
    alpha: float

    def label(self) -> str:
        return f"{self.ratio:.3f}x [{self.interval[0]:.3f}, {self.interval[1]:.3f}]"

    def to_dict(self) -> dict[str, object]:
        return {"ratio": self.ratio, "interval": list(self.interval), "pairs": self.pairs, "spread": self.spread,
                "alpha": self.alpha}


def paired_ratio(reference: Sequence[float], candidate: Sequence[float], alpha: float) -> PairedRatio | None:
    """The ratio with its interval, or None when the pairs cannot give one (fewer than
    ``MIN_PAIRS`` pairs, or a value <= 0)."""
    if len(reference) != len(candidate):
        raise ValueError(f"paired values need as many rounds on each side: {len(reference)} vs {len(candidate)}")
    pairs = [(r, c) for r, c in zip(reference, candidate)]
    if len(pairs) < MIN_PAIRS or any(r <= 0 or c <= 0 for r, c in pairs):
        return None
    logs = [math.log(c) - math.log(r) for r, c in pairs]
    center, spread = statistics.fmean(logs), statistics.stdev(logs)
    half = t_quantile(1 - alpha, len(logs) - 1) * spread / math.sqrt(len(logs))
    return PairedRatio(math.exp(center), (math.exp(center - half), math.exp(center + half)), len(logs), spread, alpha)


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
