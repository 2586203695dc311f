"""Adaptive rounds: a case measures until its answer is known, at a confidence that survives looking.

After every timed round from ``min_rounds`` on, the lab looks at the interval of the case's figure:
the mean of per-round log values (its own tokens/s, or the per-pair log ratio against its reference
or its undrafted twin). It stops when the interval is precise (half-width <= ``precision``), when it
already decides (entirely beyond a band the caller gives: the tolerance around 1, an SLO, the
incumbent configuration), or when ``max_rounds`` or ``max_seconds`` is reached.

Stopping when an interval looks good makes a plain t interval cover the truth less often than it
says (optional stopping). Here look k of at most K = max_rounds - min_rounds + 1 spends alpha / K
(Bonferroni over the looks): the chance that the interval at *any* look misses the truth is at most
alpha, so the interval the case stops with keeps its 1 - alpha whichever look stopped it
(tests/unit/test_sequential.py checks it by simulation, beside a plain t interval under the same rule,
which does not). Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass
from typing import Callable, Sequence

PRECISE, DECIDED, MAX_ROUNDS, TIME = "precise", "decided", "max rounds", "time budget"
VIOLATED = "clearly violates"  # an SLO decided (exceeds)


@dataclass(frozen=True, slots=True)
class StoppingRule:
    """When a case has measured enough. Defaults from this project's 2-core development VM: a quiet
    case's rounds spread under 1% (it stops at the minimum), a paired case's 2-4% (a ratio within
    +-5% needs 6-7 pairs; one clearly faster or slower than its reference is decided sooner)."""

    precision: float = 0.05  # interval half-width, log scale (~ +-5%), that ends the case
    min_rounds: int = 3  # the first look: a t interval needs a spread
    max_rounds: int = 10
    max_seconds: float = 90.0  # of timed rounds; the case ends at the first look past it
    alpha: float = 0.05  # two-sided, spent over every look

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.precision < 1:
            problems.append(f"precision={self.precision} (a fraction in (0, 1), e.g. 0.05)")
        if self.min_rounds < 2:
            problems.append(f"min_rounds={self.min_rounds} (>= 2: an interval needs a spread)")
        if self.max_rounds < self.min_rounds:
            problems.append(f"max_rounds={self.max_rounds} (>= min_rounds={self.min_rounds})")
        if not self.max_seconds > 0:
            problems.append(f"max_seconds={self.max_seconds} (> 0)")
        if not 0 < self.alpha < 1:
            problems.append(f"alpha={self.alpha} (in (0, 1))")
        if problems:
            raise ValueError("adaptive rounds: " + "; ".join(problems))

    @property
    def looks(self) -> int:
        return self.max_rounds - self.min_rounds + 1

    @property
    def alpha_per_look(self) -> float:
        return self.alpha / self.looks

    def to_dict(self) -> dict[str, float]:
        return {"precision": self.precision, "min_rounds": self.min_rounds, "max_rounds": self.max_rounds,
                "max_seconds": self.max_seconds, "alpha": self.alpha}


@dataclass(frozen=True, slots=True)
class Interval:
    """The mean of log values with its two-sided interval at ``alpha``, back on the ratio scale."""

    center: float
    low: float
    high: float
    rounds: int
    alpha: float

    @property
    def half_width(self) -> float:
        """Half the interval's width on the log scale (~ the relative precision)."""
        return (math.log(self.high) - math.log(self.low)) / 2

    def to_dict(self) -> dict[str, float]:
        return {"center": self.center, "low": self.low, "high": self.high, "rounds": self.rounds, "alpha": self.alpha}


@functools.lru_cache(maxsize=1024)
def t_quantile(p: float, df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(p, df))


def log_interval(values: Sequence[float], alpha: float) -> Interval | None:
    """The t interval of the mean of log(values) at two-sided ``alpha``; None under 2 values or a value <= 0."""
    if len(values) < 2 or any(v <= 0 for v in values):
        return None
    logs = [math.log(v) for v in values]
    center, spread = statistics.fmean(logs), statistics.stdev(logs)
    half = t_quantile(1 - alpha / 2, len(logs) - 1) * spread / math.sqrt(len(logs))
    return Interval(math.exp(center), math.exp(center - half), math.exp(center + half), len(logs), alpha)


@dataclass(frozen=True, slots=True)
class Look:
    """What one look saw and decided: stop (with the reason) or go on."""

    interval: Interval | None
    stop: bool
    reason: str  # PRECISE, DECIDED (+ what), MAX_ROUNDS, TIME, or "" to go on

    def describe(self) -> str:
        if self.interval is None:
            return self.reason or "no interval yet"
        i = self.interval
        return (f"{i.rounds} rounds, {i.center:.3f} [{i.low:.3f}, {i.high:.3f}] (+-{i.half_width:.1%}); "
                f"{self.reason or 'going on'}")


Decide = Callable[[Interval], "str | None"]  # a decided answer for this interval, or None


def look(values: Sequence[float], elapsed_s: float, rule: StoppingRule, decide: Decide | None = None) -> Look:
    """After a timed round: ``values`` holds each timed round's figure so far (positive numbers),
    ``elapsed_s`` the timed rounds' wall time. Before ``min_rounds`` it never stops."""
    if len(values) < rule.min_rounds:
        return Look(None, False, "")
    interval = log_interval(values, rule.alpha_per_look)
    if interval is None:  # a value <= 0 (nothing measured in a round): more rounds will not mend it
        return Look(None, True, "no positive figure to judge")
    if interval.half_width <= rule.precision:
        return Look(interval, True, f"{PRECISE}: +-{interval.half_width:.1%} <= +-{rule.precision:.0%}")
    decided = decide(interval) if decide is not None else None
    if decided:
        return Look(interval, True, f"{DECIDED}: {decided}")
    if len(values) >= rule.max_rounds:
        return Look(interval, True, f"{MAX_ROUNDS} ({rule.max_rounds}) reached at +-{interval.half_width:.1%}")
    if elapsed_s >= rule.max_seconds:
        return Look(interval, True, f"{TIME} ({rule.max_seconds:.0f} s) spent at +-{interval.half_width:.1%}")
    return Look(interval, False, "")


def below(bound: float) -> Decide:
    """Decided when the whole interval of a ratio lies below ``bound`` (the lower end of the best
    configuration's interval against the same reference, in ``inferlab tune``): clearly worse than
    what is already known, so more rounds could not change the choice. A case above it measures on
    until it is precise: it may be the new best."""
    def decide(interval: Interval) -> str | None:
        return f"below the incumbent's {bound:.3f}x" if interval.high < bound else None
    return decide


def exceeds(label: str, limit: float, values: Sequence[float], alpha: float) -> str | None:
    """Decided when the interval of a case's own per-round figure (``values``: each timed round's
    statistic of an SLO metric, e.g. its median TPOT) lies wholly above ``limit``: the SLO is clearly
    violated, and more rounds could not make the configuration acceptable. Judged at the look's
    ``alpha`` like the case's own figure."""
    interval = log_interval(values, alpha)
    if interval is None or interval.low <= limit:
        return None
    return f"{VIOLATED} {label}: [{interval.low:.4g}, {interval.high:.4g}] over {interval.rounds} rounds"


def beyond_band(tolerance: float) -> Decide:
    """Decided when the whole interval of a ratio lies outside [1/(1+tol), 1+tol]: clearly faster or
    clearly slower than what it is paired with; more rounds would only sharpen by how much."""
    def decide(interval: Interval) -> str | None:
        if interval.low > 1 + tolerance:
            return f"above {1 + tolerance:.2f}x"
        if interval.high < 1 / (1 + tolerance):
            return f"below {1 / (1 + tolerance):.2f}x"
        return None
    return decide
