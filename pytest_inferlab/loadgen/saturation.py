"""Over-saturation: the server takes requests more slowly than they arrive, so the queue (and the
wait before the first token) grows without bound and a longer run only measures a longer queue.

The test is a slope with its interval, not a threshold: over the part of the round after the
first request finished (before that, in-flight requests are still ramping up), both the number
of requests in flight (sampled in time) and the time to first token (request after request)
are tested for a drift; the round is over-saturated when the lower end of the one-sided
``confidence`` interval of both rates is above zero and stays so for a while. Either alone rises
by chance now and then; both together, at 99%, lasting, is a queue growing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

MIN_POINTS = 12     # per series, before any test
MIN_SPAN_S = 1.0    # of the window, before any test
PERSIST_S, PERSIST_SHARE = 0.5, 0.1  # both rates must stay positive this long (and this share of the window)


@dataclass(frozen=True, slots=True)
class Slope:
    per_s: float
    low: float  # one-sided lower bound at the watch's confidence
    points: int

    def to_dict(self) -> dict[str, float]:
        return {"per_s": self.per_s, "lower_bound_per_s": self.low, "points": self.points}


def drift(times: Sequence[float], values: Sequence[float], confidence: float) -> Slope | None:
    """How fast ``values`` rise per second, from the mean of successive increments, and the
    one-sided lower bound of that rate (Student t on the increments).

    A queue that grows without bound is a random walk with a drift: its increments are what is
    independent (a least-squares slope through the levels, whose residuals are strongly
    autocorrelated, would claim a precision it does not have). A stable queue's increments
    average zero and are negatively correlated, which only makes the test more cautious."""
    n = len(values) - 1
    span = times[-1] - times[0] if n >= 1 else 0.0
    if n < 2 or span <= 0:
        return None
    from scipy import stats

    steps = [b - a for a, b in zip(values, values[1:])]
    mean = sum(steps) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in steps) / (n - 1))
    per_step_low = mean - stats.t.ppf(confidence, n - 1) * sd / math.sqrt(n)
    return Slope(mean * n / span, per_step_low * n / span, n + 1)


@dataclass(slots=True)
class SaturationWatch:
    """Fed during an open-loop round; ``verdict()`` says whether the queue is growing without bound."""

    confidence: float = 0.99
    in_flight: list[tuple[float, float]] = field(default_factory=list)  # (time, requests in flight)
    first_tokens: list[tuple[float, float]] = field(default_factory=list)  # (send time, TTFT s)
    first_finish: float | None = None
    rising_since: float | None = None  # when both slopes last turned significantly positive

    def sample(self, now: float, in_flight: int) -> None:
        self.in_flight.append((now, float(in_flight)))

    def finished(self, sent: float, ttft_s: float | None, now: float) -> None:
        if self.first_finish is None:
            self.first_finish = now
        if ttft_s is not None:
            self.first_tokens.append((sent, ttft_s))

    def verdict(self) -> dict[str, Any] | None:
        """None while stable (or too little seen); else what shows the queue growing."""
        if self.first_finish is None:
            return None
        start = self.first_finish
        flight = [(t, v) for t, v in self.in_flight if t >= start]
        ttft = [(t, v) for t, v in self.first_tokens if t >= start]
        if min(len(flight), len(ttft)) < MIN_POINTS or flight[-1][0] - flight[0][0] < MIN_SPAN_S:
            return None
        rising = drift(*zip(*flight), self.confidence), drift(*zip(*ttft), self.confidence)
        now = flight[-1][0]
        if any(s is None or s.low <= 0 for s in rising):
            self.rising_since = None
            return None
        if self.rising_since is None:
            self.rising_since = now
        if now - self.rising_since < max(PERSIST_S, PERSIST_SHARE * (now - start)):
            return None  # a stable queue's chance rise does not last; a growing one's does
        return {"confidence": self.confidence, "window_s": now - start, "rising_for_s": now - self.rising_since,
                "in_flight_slope": rising[0].to_dict(), "ttft_slope": rising[1].to_dict()}
