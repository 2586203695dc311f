"""compare(current, baseline, policy) -> verdict. Pure functions: no I/O, no pytest.

Timing metrics are judged on a log scale against the baseline's history of per-run values, so
run-to-run noise (not only within-run noise) sets the width of the interval:

    d  = log(current) - mean(log(history))             the log ratio to the baseline
    s  = stdev(log(history))  (>= 3 runs; floored at min_run_noise), else prior_run_noise
    se = s * sqrt(1/m + 1/k)                             the mean of m new runs vs the mean of k runs
                                                         (m = 1, or more once a regression is re-measured)
    interval = d +/- q * se,  q = t(1 - alpha, k - 1)    (normal quantile without an estimate)

regressed: the whole interval is beyond the tolerance in the bad direction; improved: beyond it
in the good direction; unchanged: inside +/- tolerance (equivalence); otherwise inconclusive.
``alpha`` is per series: the caller divides the run's false-alarm budget among its series
(Bonferroni).

Host-speed calibration (``judge_run``): when this run and at least ``min_runs`` runs of the
history carry the time of the host-speed reference kernel (probes/host_speed.py), and the
history is less noisy in units of it (latency / reference, rate x reference) than raw, timings
are judged in those units; the verdict's ratio and interval are then those of the calibrated
values. The choice looks only at the history, never at the run being judged: on the development
VM the reference cancelled host drift in some hours and added noise in others.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from pytest_inferlab.judge.noise import NoisePool, moderated
from pytest_inferlab.judge.policy import MetricPolicy
from pytest_inferlab.measure.catalog import DETERMINISTIC, INFO, TIMING
from pytest_inferlab.measure.paired import t_quantile
from pytest_inferlab.record.record import NOT_MEASURED

REGRESSED = "regressed"
OUTCOMES = (REGRESSED, "improved", "unchanged", "inconclusive", "invalid", "new")


@dataclass(frozen=True, slots=True)
class NoiseModel:
    """Run-to-run noise assumptions (log scale, ~relative) when the history cannot tell."""

    prior_run_noise: float = 0.10  # used with fewer than ``min_runs`` baseline runs
    min_run_noise: float = 0.01  # floor: a lucky, tight history must not make the gate trigger-happy
    min_runs: int = 3


@dataclass(frozen=True, slots=True)
class Verdict:
    metric: str
    outcome: str
    current: float | None
    baseline: float | None
    ratio: float | None  # current / baseline
    interval: tuple[float, float] | None  # of the ratio
    tolerance: float
    reason: str


def bonferroni_alpha(family_alpha: float, series: int) -> float:
    """Per-series level that keeps the chance of any false alarm in the run <= family_alpha."""
    return family_alpha / max(1, series)


def classify(low: float, high: float, policy: MetricPolicy) -> str:
    """The outcome of a log-ratio interval [low, high] (current / baseline) against the tolerance:
    regressed or improved only when the whole interval is beyond it, unchanged when the whole
    interval is inside it (equivalence), else inconclusive."""
    bad_low, bad_high = (low, high) if not policy.higher_is_better else (-high, -low)
    limit = math.log1p(policy.tolerance)
    if bad_low > limit:
        return REGRESSED
    if bad_high < -limit:
        return "improved"
    if -limit <= bad_low and bad_high <= limit:
        return "unchanged"
    return "inconclusive"


def judge_timing(policy: MetricPolicy, current: float, history: Sequence[float], alpha: float,
                 noise: NoiseModel = NoiseModel(), pool: NoisePool | None = None, runs: int = 1) -> Verdict:
    """``pool``: the machine's other series (judge/noise.py), whose noise a short history borrows;
    ``runs``: how many runs ``current`` is the geometric mean of (a case and its re-measurements)."""
    name, tol = policy.name, policy.tolerance
    if current <= 0 or any(v <= 0 for v in history):
        return Verdict(name, "inconclusive", current, history[-1], None, None, tol, "non-positive value: no ratio")
    logs = [math.log(v) for v in history]
    k = len(logs)
    prior = pool.prior(name, history) if pool is not None and k >= 2 else None
    found = moderated(history, prior, noise.min_run_noise) if k >= 2 else None
    if found is not None and (k >= noise.min_runs or prior is not None):
        spread, df, source = found.sd, found.df, found.source
    else:
        spread, df, source = max(noise.prior_run_noise, noise.min_run_noise), None, f"assumed ({k} run(s) in history)"
    center = statistics.fmean(logs)
    d = math.log(current) - center
    half = t_quantile(1 - alpha, df) * spread * math.sqrt(1 / runs + 1 / k)
    outcome = classify(d - half, d + half, policy)
    ratio, interval = math.exp(d), (math.exp(d - half), math.exp(d + half))
    of_runs = f" (the mean of {runs} runs)" if runs > 1 else ""
    reason = (f"{ratio:.3f}x baseline{of_runs}, interval [{interval[0]:.3f}, {interval[1]:.3f}] at alpha {alpha:.2g}; "
              f"tolerance {tol:.0%}; run-to-run noise {spread:.1%} {source}")
    if df is None and outcome in (REGRESSED, "improved"):
        # An assumed noise figure is a guess, and on a shared host a poor one (its speed moves by 25-30%
        # for minutes): only a measured history, or a paired comparison, may call a change.
        outcome = "inconclusive"
        reason += (f"; not judged: the history has {k} run(s), run-to-run noise is measured from "
                   f"{noise.min_runs} (or from 2 with the machine's other saved cases; save more baselines, "
                   "or compare paired: inferlab ab BASE)")
    return Verdict(name, outcome, current, math.exp(center), ratio, interval, tol, reason)


def judge_deterministic(policy: MetricPolicy, current: float, baseline: float) -> Verdict:
    """Deterministic: the ratio to the latest baseline against the tolerance."""
    name, tol = policy.name, policy.tolerance
    if baseline <= 0:
        outcome = "unchanged" if current == baseline else "inconclusive"
        return Verdict(name, outcome, current, baseline, None, None, tol, "baseline is 0: no ratio")
    ratio = current / baseline
    bad = ratio if not policy.higher_is_better else 1 / ratio if ratio else math.inf
    outcome = "regressed" if bad > 1 + tol else "improved" if bad < 1 / (1 + tol) else "unchanged"
    return Verdict(name, outcome, current, baseline, ratio, (ratio, ratio), tol,
                   f"{ratio:.3f}x baseline; tolerance {tol:.0%} (deterministic)")


def judge_count(policy: MetricPolicy, current: float, baseline: float) -> Verdict:
    """Counts of bad events (failed requests): any increase is a regression."""
    outcome = "regressed" if current > baseline else "improved" if current < baseline else "unchanged"
    return Verdict(policy.name, outcome, current, baseline, None, None, 0.0, f"{current:g} vs {baseline:g} in the baseline")


def judge(policy: MetricPolicy, current: float | None, history: Sequence[float], alpha: float,
          noise: NoiseModel = NoiseModel(), invalid: str | None = None, pool: NoisePool | None = None,
          runs: int = 1) -> Verdict | None:
    """One metric's verdict, or None for metrics that are not judged (kind ``info``)."""
    if policy.kind == INFO:
        return None
    tol = policy.tolerance
    if invalid:
        return Verdict(policy.name, "invalid", current, None, None, None, tol, invalid)
    if current is None:
        return Verdict(policy.name, "invalid", None, None, None, None, tol, NOT_MEASURED)
    if not history:
        return Verdict(policy.name, "new", current, None, None, None, tol, "no baseline for this metric")
    if policy.kind == TIMING:
        return judge_timing(policy, current, history, alpha, noise, pool, runs)
    if policy.kind == DETERMINISTIC:
        return judge_deterministic(policy, current, history[-1])
    return judge_count(policy, current, history[-1])


Pools = tuple["NoisePool | None", "NoisePool | None"]  # (raw, host-speed units)


def in_host_units(value: float, host_ref_s: float, higher_is_better: bool) -> float:
    """A timing in units of the host-speed reference: latencies divided by it, rates multiplied."""
    return value * host_ref_s if higher_is_better else value / host_ref_s


def _log_spread(values: Sequence[float]) -> float:
    return statistics.stdev(math.log(v) for v in values)


def judge_run(policy: MetricPolicy, current: float | None, current_ref: float | None,
              runs: Sequence[tuple[float, float | None]], alpha: float, noise: NoiseModel = NoiseModel(),
              invalid: str | None = None, pools: "Pools" = (None, None), current_runs: int = 1) -> Verdict | None:
    """``judge`` against a history of (value, host reference seconds) runs, calibrated when it can be;
    ``pools``: the machine's noise pools in raw and in host-speed units (judge/noise.py); ``current_runs``:
    how many runs ``current`` (and ``current_ref``) are the geometric mean of."""
    calibrated = [(v, ref) for v, ref in runs if ref and v > 0]
    scaled_history = [in_host_units(v, ref, policy.higher_is_better) for v, ref in calibrated]
    use_host_units = (policy.kind == TIMING and not invalid and current is not None and current > 0
                      and bool(current_ref) and len(calibrated) >= noise.min_runs
                      and _log_spread(scaled_history) < _log_spread([v for v, _ in calibrated]))
    if not use_host_units:
        return judge(policy, current, [v for v, _ in runs], alpha, noise, invalid, pools[0],
                     current_runs)
    scaled = judge_timing(policy, in_host_units(current, current_ref, policy.higher_is_better), scaled_history,
                          alpha, noise, pools[1], current_runs)
    raw_center = math.exp(statistics.fmean(math.log(v) for v, _ in calibrated))
    return dataclasses.replace(scaled, current=current, baseline=raw_center,
                               reason=f"in host-speed units: {scaled.reason}")


def mcnemar(baseline_correct: Sequence[bool], current_correct: Sequence[bool]) -> tuple[int, int, float]:
    """Exact McNemar test on paired per-item correctness: (lost, gained, two-sided p)."""
    if len(baseline_correct) != len(current_correct):
        raise ValueError(f"paired test needs the same items: {len(baseline_correct)} vs {len(current_correct)}")
    lost = sum(b and not c for b, c in zip(baseline_correct, current_correct))
    gained = sum(c and not b for b, c in zip(baseline_correct, current_correct))
    return lost, gained, _two_sided_sign_test(min(lost, gained), lost + gained)


def _two_sided_sign_test(k: int, n: int) -> float:
    """Exact two-sided binomial p-value of ``k`` <= n/2 successes in ``n`` trials at 1/2 (scipy's
    ``binomtest(k, n, 0.5)``; the distribution is symmetric, so twice the lower tail, capped at 1).
    Integer arithmetic: exact, and no scipy import (a second and a half) for every report."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


def judge_items(name: str, baseline_correct: Sequence[bool], current_correct: Sequence[bool], alpha: float,
                tolerance: float = 0.0) -> Verdict:
    """Accuracy on the same items: regressed/improved only when McNemar rejects at ``alpha``."""
    lost, gained, p = mcnemar(baseline_correct, current_correct)
    n = len(current_correct)
    base_acc, cur_acc = sum(baseline_correct) / n, sum(current_correct) / n
    if p < alpha:
        outcome = "regressed" if lost > gained else "improved"
    else:
        outcome = "unchanged" if abs(cur_acc - base_acc) <= tolerance or lost + gained == 0 else "inconclusive"
    reason = f"{lost} items lost, {gained} gained of {n}; McNemar exact p={p:.3g} (alpha {alpha:.2g})"
    return Verdict(name, outcome, cur_acc, base_acc, cur_acc / base_acc if base_acc else None, None, tolerance, reason)


def bad_ratio(verdict: Verdict, policy: MetricPolicy) -> float | None:
    """How much worse the current value is (> 1: worse), whatever the metric's direction."""
    if verdict.ratio is None or verdict.ratio <= 0:
        return None
    return 1 / verdict.ratio if policy.higher_is_better else verdict.ratio


HOST_REF_POLICY = MetricPolicy("host_ref_s", TIMING, higher_is_better=False, tolerance=0.05)


def host_slowdown(current_ref: float | None, history_refs: Sequence[float], alpha: float,
                  noise: NoiseModel = NoiseModel()) -> float | None:
    """How much slower the host-speed reference ran now than in the history (current / history), when
    it is slower beyond its tolerance *and* beyond its own run-to-run noise (judged like a timing
    series); None otherwise. The reference kernel's own time wanders by a few percent on a quiet host."""
    refs = [r for r in history_refs if r and r > 0]
    if not current_ref or not refs:
        return None
    verdict = judge_timing(HOST_REF_POLICY, current_ref, refs, alpha, noise)
    return verdict.ratio if verdict.outcome == REGRESSED else None


# Cases "moved alike" when their worst timing series slowed by factors within this ratio of each other.
ALIKE = 1.25


@dataclass(frozen=True, slots=True)
class HostEvidence:
    """What is known about the host while a case ran. A timing regression is set aside only on this:
    the host-speed reference (measured around CPU cases) slowing beyond its own noise, or, where no
    reference was measured (GPU, --inferlab-host-ref=none), most earlier cases of the same run having
    slowed alike. A case that moved as a whole says nothing about the host: a slower kernel, a lost
    fusion or a wrong dtype moves every series of a case together too."""

    reference_ratio: float | None = None  # host-speed reference now / its history; None: not measured
    reference_slower: bool = False  # slower beyond its tolerance and its own noise (``host_slowdown``)
    alike: int = 0  # earlier cases of this run that regressed by a similar factor
    judged: int = 0  # earlier cases of this run judged against a history

    @classmethod
    def of(cls, current_ref: float | None, history_refs: Sequence[float], alpha: float, alike: int = 0,
           judged: int = 0) -> "HostEvidence":
        """The host-speed reference now against its history (``host_slowdown``), with the run's earlier cases."""
        ratio = current_ref / statistics.geometric_mean(history_refs) if current_ref and history_refs else None
        return cls(ratio, host_slowdown(current_ref, history_refs, alpha) is not None, alike, judged)

    def describe(self) -> str:
        if self.reference_ratio is not None:
            state = "slower than in the history" if self.reference_slower else "steady"
            return f"the host-speed reference was {state} ({self.reference_ratio:.2f}x)"
        return f"no host-speed reference; {self.alike} of {self.judged} earlier case(s) of this run regressed alike"

    @property
    def run_moved(self) -> bool:
        return self.reference_ratio is None and self.judged >= 2 and 2 * self.alike > self.judged


def blame_the_host(verdicts: Sequence[Verdict], policies: Mapping[str, MetricPolicy],
                   evidence: HostEvidence) -> list[Verdict]:
    """Timing regressions stand unless the evidence about the host says it moved: a host-speed reference
    that slowed (for verdicts judged in raw units; those in host-speed units have had it divided out),
    or, without a reference, most of the run's earlier cases slowing alike. Each verdict says which
    evidence decided."""
    out = []
    for verdict in verdicts:
        if verdict.outcome != REGRESSED or policies[verdict.metric].kind != TIMING:
            out.append(verdict)
            continue
        raw = not verdict.reason.startswith("in host-speed units")
        if (evidence.reference_slower and raw) or evidence.run_moved:
            out.append(dataclasses.replace(verdict, outcome="inconclusive", reason=(
                f"{verdict.reason}; not judged a regression: {evidence.describe()}, so the host moved "
                "(re-run in a quieter hour, or compare paired: inferlab ab BASE)")))
        else:
            out.append(dataclasses.replace(verdict, reason=f"{verdict.reason}; {evidence.describe()}: the case moved, "
                                                           "not the host"))
    return out


def worst_slowdown(verdicts: Sequence[Verdict], policies: Mapping[str, MetricPolicy]) -> float | None:
    """The largest bad ratio among a case's regressed timing series (what "alike" compares), or None."""
    ratios = [bad_ratio(v, policies[v.metric]) for v in verdicts
              if v.outcome == REGRESSED and policies[v.metric].kind == TIMING]
    return max((r for r in ratios if r is not None), default=None)


def alike(a: float, b: float) -> bool:
    return max(a, b) / min(a, b) <= ALIKE


def item_verdicts(current: Mapping[str, Any], baseline: Mapping[str, Any], alpha: float) -> list[Verdict]:
    """McNemar verdicts of per-item task correctness against the baseline's, where both have the
    same items (same task, same --inferlab-eval-limit)."""
    verdicts = []
    for task, result in sorted(current.items()):
        stored = baseline.get(task)
        items = result.get("items")
        if (items is None or stored is None or stored.get("limit") != result.get("limit")
                or len(stored["items"]) != len(items)):
            continue
        verdicts.append(judge_items(f"{task}.items", stored["items"], items, alpha))
    return verdicts
