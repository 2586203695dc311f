"""The ratio of two sides measured in alternating rounds, with its interval. Pure functions.

A shared machine's speed drifts by tens of percent over minutes; two sides measured at different
times differ by that drift. Measured in alternating rounds (A B B A A B ...), each pair of rounds
sees the same machine, so the per-pair log ratio cancels the slow drift:

    d_i  = log(candidate_i) - log(reference_i)       one per pair of adjacent rounds
    d    = mean(d_i),  se = stdev(d_i) / sqrt(n)
    interval = d +/- t(1 - alpha, n - 1) * se        (a one-sided test at alpha on each side)

Used to report an optimization's speed against its reference (``compare_rounds``) and, by
judge/paired.py, to judge a candidate against a base.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

from pytest_inferlab.measure.metrics import Measurement, round_values
from pytest_inferlab.ground.trace import RoundTrace

MIN_PAIRS = 3  # fewer pairs give no usable estimate of the pairs' spread
REPORT_ALPHA = 0.025  # on each side: the 95% interval reported beside an optimization's ratio


def t_quantile(p: float, df: int | None) -> float:
    """Student's t quantile (the normal one when ``df`` is None)."""
    from scipy import stats

    return float(stats.norm.ppf(p) if df is None else stats.t.ppf(p, df))


@dataclass(frozen=True, slots=True)
class PairedRatio:
    """candidate / reference over pairs of adjacent rounds."""

    ratio: float  # geometric mean of the per-pair ratios
    interval: tuple[float, float]  # of the ratio, two-sided at 1 - 2 alpha
    pairs: int
    spread: float  # stdev of the per-pair log ratios (~ relative noise of one pair)
    alpha: float
    per_pair: tuple[float, ...] = ()  # each pair's ratio

    def to_dict(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "interval": list(self.interval), "pairs": self.pairs, "spread": self.spread,
                "alpha": self.alpha, "per_pair": list(self.per_pair)}


def paired_ratio(reference: Sequence[float], candidate: Sequence[float], alpha: float) -> PairedRatio | None:
    """The ratio with its interval, or None when the pairs cannot give one (fewer than
    ``MIN_PAIRS`` pairs, or a value <= 0)."""
    if len(reference) != len(candidate):
        raise ValueError(f"paired values need as many rounds on each side: {len(reference)} vs {len(candidate)}")
    pairs = list(zip(reference, candidate))
    if len(pairs) < MIN_PAIRS or any(r <= 0 or c <= 0 for r, c in pairs):
        return None
    logs = [math.log(c) - math.log(r) for r, c in pairs]
    center, spread = statistics.fmean(logs), statistics.stdev(logs)
    half = t_quantile(1 - alpha, len(logs) - 1) * spread / math.sqrt(len(logs))
    return PairedRatio(math.exp(center), (math.exp(center - half), math.exp(center + half)), len(logs), spread, alpha,
                       tuple(math.exp(d) for d in logs))


def compare_rounds(candidate: Sequence[RoundTrace], reference: Sequence[RoundTrace], alpha: float = REPORT_ALPHA
                   ) -> tuple[dict[str, Measurement], dict[str, Any], dict[str, str]]:
    """An optimization against its reference, measured in alternating rounds: ``speedup_vs_reference``
    (output tokens/s ratio, with its interval: 95% for a fixed count of rounds; under adaptive rounds
    ``alpha`` is the stopping rule's per-look share, so the interval keeps its 95% however the case
    stopped, judge/sequential.py) and every timing metric's ratio in the conditions.
    Returns (measurements, ratios by metric, absent reasons)."""
    cand, ref = round_values(candidate), round_values(reference)
    ratios = {}
    for name in sorted(cand.keys() & ref.keys()):
        found = paired_ratio(ref[name][:len(cand[name])], cand[name][:len(ref[name])], alpha)
        if found is not None:
            ratios[name] = found
    speed = ratios.get("output_tok_per_s")
    if speed is None:
        pairs = min(len(cand.get("output_tok_per_s", [])), len(ref.get("output_tok_per_s", [])))
        return {}, {}, {"speedup_vs_reference": f"{pairs} pair(s) of rounds with tokens/s on both sides; an interval "
                                                f"needs >= {MIN_PAIRS} (raise rounds)"}
    measurement = Measurement("x", speed.ratio, speed.per_pair, ci95=speed.interval)
    return {"speedup_vs_reference": measurement}, {name: r.to_dict() for name, r in ratios.items()}, {}
