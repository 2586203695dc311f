"""Run-to-run noise pooled over a machine's saved series: a prior for a short history.

Three saved runs give a standard deviation with two degrees of freedom: the t quantile (with the
run's false-alarm budget split over its series) is then so large that a +57% slowdown read
"inconclusive" (2026-12-05). Run-to-run noise is a property of the machine as much as of the case, so
the gate pools it (log scale) over every other series of the machine's baselines: per metric where
those hold enough runs, else over every timing metric. A short history borrows the pool's degrees of
freedom (the moderated variance of an empirical-Bayes t test, as limma does for gene expression):

    s2 = (df_own * s2_own + df_prior * s2_pool) / (df_own + df_prior),   df = df_own + df_prior

with ``df_prior`` at most ``PRIOR_DF``. A series clearly noisier than the pool (an F test at 1%) keeps
its own variance: a noisy case is never judged by a quiet machine's noise. Pure functions.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

PRIOR_DF = 20  # the pool weighs at most like 20 runs of the series' own
MIN_POOL_DF = 6  # fewer degrees of freedom: the metric's own pool is too thin; the machine-wide one serves
NOISIER = 0.01  # a series noisier than the pool at this level (F test) keeps its own variance


@dataclass(frozen=True, slots=True)
class Spread:
    """Sum of squared deviations of log values from their mean, and its degrees of freedom."""

    ss: float = 0.0
    df: int = 0

    def __add__(self, other: "Spread") -> "Spread":
        return Spread(self.ss + other.ss, self.df + other.df)

    def __sub__(self, other: "Spread") -> "Spread":
        return Spread(max(0.0, self.ss - other.ss), self.df - other.df)

    @property
    def variance(self) -> float | None:
        return self.ss / self.df if self.df > 0 else None


def spread_of(values: Sequence[float]) -> Spread:
    """The log-scale spread of one series' per-run values (values <= 0 have no log and are left out)."""
    logs = [math.log(v) for v in values if v > 0]
    if len(logs) < 2:
        return Spread()
    center = statistics.fmean(logs)
    return Spread(sum((x - center) ** 2 for x in logs), len(logs) - 1)


@dataclass(frozen=True, slots=True)
class NoisePool:
    """A machine's pooled run-to-run noise: per metric, and over every timing metric."""

    by_metric: Mapping[str, Spread]
    overall: Spread
    series: int  # how many series went into it

    @classmethod
    def of(cls, series: Iterable[tuple[str, Sequence[float]]]) -> "NoisePool":
        """``series``: (metric, per-run values) of every saved timing series of one machine."""
        by_metric: dict[str, Spread] = {}
        overall, count = Spread(), 0
        for metric, values in series:
            spread = spread_of(values)
            if spread.df:
                by_metric[metric] = by_metric.get(metric, Spread()) + spread
                overall, count = overall + spread, count + 1
        return cls(by_metric, overall, count)

    def prior(self, metric: str, own: Sequence[float]) -> tuple[Spread, str] | None:
        """The pool for ``metric`` without the series ``own`` itself (one of the pool's series: the gate
        pools every saved series of the machine, the judged one's included): the metric's, or the
        machine-wide one where the metric's is thin; None where neither has the degrees of freedom."""
        mine = spread_of(own)
        metric_pool = self.by_metric.get(metric, Spread()) - mine
        if metric_pool.df >= MIN_POOL_DF:
            return metric_pool, f"{metric} over the machine's other cases"
        overall = self.overall - mine
        if overall.df >= MIN_POOL_DF:
            return overall, "every timing metric of the machine's saved cases"
        return None


@dataclass(frozen=True, slots=True)
class Noise:
    """The run-to-run noise a verdict uses: standard deviation (log scale), degrees of freedom, why."""

    sd: float
    df: int
    source: str


@functools.lru_cache(maxsize=256)
def f_quantile(p: float, dfn: int, dfd: int) -> float:
    from scipy import stats

    return float(stats.f.ppf(p, dfn, dfd))


def moderated(own: Sequence[float], prior: tuple[Spread, str] | None, floor: float) -> Noise | None:
    """The noise of ``own`` (one series' per-run values) with the pool's help; None without any estimate."""
    mine = spread_of(own)
    if prior is None:
        return Noise(max(math.sqrt(mine.variance), floor), mine.df, f"measured over {mine.df + 1} runs") \
            if mine.df else None
    pool, where = prior
    pool_var = pool.variance
    if mine.df and pool_var and mine.variance / pool_var > f_quantile(1 - NOISIER, mine.df, pool.df):
        return Noise(max(math.sqrt(mine.variance), floor), mine.df,
                     f"measured over {mine.df + 1} runs (noisier than the machine's pool: kept its own)")
    weight = min(pool.df, PRIOR_DF)
    variance = ((mine.ss + weight * pool_var) / (mine.df + weight))
    return Noise(max(math.sqrt(variance), floor), mine.df + weight,
                 f"{mine.df + 1} runs of its own, pooled with {where} ({pool.df} degrees of freedom)")
