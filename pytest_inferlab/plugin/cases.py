"""The three kinds of case the lab measures, each a small object that only measures.

``LatencyCase``: warm-up and timed rounds of a workload (back-to-back batches, or served through a
batching engine under an arrival process, or drafted and undrafted rounds interleaved).
``SweepCase``: offered rate up to saturation. ``OverheadCase``: the recording path against a bare
``generate`` loop. Each gives a ``CaseResult`` (measure/result.py); the recorder turns it into a record.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from pytest_inferlab.ground.alternation import pair_order
from pytest_inferlab.engines.base import Engine
from pytest_inferlab.measure.curves import curve_point
from pytest_inferlab.judge.sequential import Decide, Interval, below, beyond_band, exceeds
from pytest_inferlab.measure.metrics import Measurement, bootstrap_median_ci, measure, round_values, scalar, window_s
from pytest_inferlab.measure.paired import REPORT_ALPHA, compare_rounds
from pytest_inferlab.measure.result import CaseResult
from pytest_inferlab.measure.speculative_pairs import SpeculativePairs
from pytest_inferlab.plugin.rounds import DrivenRounds, RoundDriver, RoundPlan
from pytest_inferlab.run.batching import BatchingSpec, generator_conditions, serve_round
from pytest_inferlab.plugin.progress import RoundProgress
from pytest_inferlab.run.reference_pairs import ReferencePairs
from pytest_inferlab.run.probes.energy import EnergyMeter
from pytest_inferlab.run.runner import run_round
from pytest_inferlab.ground.trace import Request, RequestTrace, RoundTrace, output_digest
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.specs.load import LoadSpec
from pytest_inferlab.specs.slo import SLO, Bound

SWEEP_FRACTIONS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)  # of the closed-loop capacity, when no rates are given


def energy_findings(energy: EnergyMeter, output_tokens: int) -> tuple[dict[str, Measurement], dict[str, str]]:
    joules, reason = energy.result()
    if joules is None:
        why = reason or "energy counter not read"
        return {}, {"energy_j": why, "tok_per_j": why}
    if joules > 0:
        return {"energy_j": scalar("energy_j", joules), "tok_per_j": scalar("tok_per_j", output_tokens / joules)}, {}
    return {"energy_j": scalar("energy_j", joules)}, {"tok_per_j": "energy counter did not advance"}


@dataclass(frozen=True, slots=True)
class RoundsPass:
    """One pass over a latency case's rounds: what it measured, and the traces the enrichers read."""

    result: CaseResult
    timed: list[RoundTrace]
    failed: list[RequestTrace]


def rounds_note(rounds: dict) -> tuple[str, ...]:
    """How many rounds adaptive rounds ran and why they stopped, for the results table's note."""
    if rounds.get("mode") != "adaptive" or not rounds.get("stopped"):
        return ()
    return (f"{rounds['used']} rounds: {rounds['stopped'].split(':')[0].split(' (')[0]}",)


@dataclass
class LatencyCase:
    """Rounds of ``requests`` on ``engine``: how one round runs depends on the case's load and drafting."""

    engine: Engine
    requests: Sequence[Request]
    batch_size: int
    sampling: SamplingSpec
    slo: SLO
    driver: RoundDriver
    plan: RoundPlan  # fixed rounds, or adaptive (the case's figure is judged after each round)
    say: Callable[[str], None]  # the case's live progress line (plugin/progress.py)
    tolerance: float = 0.05  # a paired figure beyond +-this is decided (adaptive rounds stop)
    batching: BatchingSpec | None = None
    load: LoadSpec | None = None
    budget_s: float = 0.0
    paired: SpeculativePairs | None = None
    against: ReferencePairs | None = None  # the reference's rounds, interleaved with the case's own
    incumbent: float | None = None  # paired: stop once the interval lies wholly below this ratio (inferlab tune)
    bounds: Sequence[Bound] = ()  # SLOs on the case's own figures: stop once one is clearly exceeded (inferlab tune)
    _traces: list[RoundTrace] = field(default_factory=list)
    _progress: RoundProgress | None = None

    def run(self, plain: bool = False) -> RoundsPass:
        """All rounds once; ``plain``: a re-measurement outside pytest-benchmark."""
        self._traces = []
        plan = self.plan
        self._progress = RoundProgress(plan.warmup + (plan.rounds or plan.rule.max_rounds), self.say,
                                       at_most=plan.adaptive)
        for pairing in (self.paired, self.against):
            if pairing is not None:
                pairing.clear()
        energy = EnergyMeter(self.engine.info.device)
        if plan.adaptive:
            paired = self.paired is not None or self.against is not None
            plan = dataclasses.replace(plan, figure=self.figure,
                                       decide=self._decide() if paired or self.bounds else None)
        driven = self.driver.drive(lambda: self._one_round(energy), plan, plain)
        timed = [t for t in self._traces if not t.warmup]
        measurements, absent = measure(self._traces, self.slo)
        served = [r for t in timed for r in t.requests]
        joules, no_joules = energy_findings(energy, sum(r.output_tokens for r in served if r.ok))
        compared, compared_conditions, not_compared = self._compared(timed, plan)
        failed = [r for r in served if not r.ok]
        notes = (f"{len(failed)} failed",) if failed else ()
        result = CaseResult({**measurements, **joules, **driven.peak_memory, **compared},
                            {**absent, **no_joules, **driven.memory_absent, **not_compared},
                            {**driven.conditions, **compared_conditions},
                            notes + rounds_note(driven.conditions.get("rounds") or {}),
                            output_digest(self._traces[-1]), round_values=round_values(timed))
        return RoundsPass(result, timed, failed)

    def _decide(self) -> Decide:
        """A paired figure is decided beyond the tolerance band around 1, or, searching for the best
        configuration, once it is clearly below the incumbent's (then it measures on until precise);
        any case, once one of its ``bounds`` is clearly exceeded by its own rounds."""
        if self.against is not None and self.incumbent is not None:
            figure: Decide | None = below(self.incumbent)
        elif self.against is not None or self.paired is not None:
            figure = beyond_band(self.tolerance)
        else:
            figure = None

        def decide(interval: Interval) -> str | None:
            return (figure(interval) if figure else None) or self._violated(interval.alpha)
        return decide

    def _violated(self, alpha: float) -> str | None:
        """The first SLO bound the timed rounds so far clearly exceed (each round's own statistic)."""
        if not self.bounds:
            return None
        per_round = [measure([t])[0] for t in self._traces if not t.warmup]
        for bound in self.bounds:
            values = [getattr(m[bound.metric], bound.statistic) for m in per_round if bound.metric in m]
            if len(values) == len(per_round) and all(v is not None and v > 0 for v in values):
                found = exceeds(bound.label, bound.limit, values, alpha)
                if found:
                    return found
        return None

    def figure(self) -> list[float]:
        """Each timed round's figure, what adaptive rounds judge: the ratio of output tokens/s to the
        reference's (paired), or to the undrafted twin's (drafting), else the case's own tokens/s."""
        own = [rate for t in self._traces if not t.warmup if (rate := tok_per_s(t)) is not None]
        if self.against is not None:
            return _ratios(own, [tok_per_s(t) for t in self.against.reference_rounds if not t.warmup])
        if self.paired is not None:
            return _ratios([tok_per_s(t) for t in self.paired.drafted], [tok_per_s(t) for t in self.paired.undrafted])
        return own

    def _compared(self, timed: list[RoundTrace], plan: RoundPlan
                  ) -> tuple[dict[str, Measurement], dict[str, Any], dict[str, str]]:
        """The case against its reference, pair by pair (measure/paired.py), when it has one; under
        adaptive rounds its interval is the stopping rule's (valid however the case stopped)."""
        if self.against is None:
            return {}, {}, {}
        reference = [t for t in self.against.reference_rounds if not t.warmup]
        alpha = plan.rule.alpha_per_look / 2 if plan.adaptive else REPORT_ALPHA
        measurements, ratios, absent = compare_rounds(timed, reference, alpha)
        return measurements, {"compared_to": {"reference": self.against.label(), "ratios": ratios}}, absent

    def _one_round(self, energy: EnergyMeter) -> None:
        warm = len(self._traces) < self.plan.warmup
        if not warm and not energy.started:
            energy.start()
        if self.against is not None:  # the case's and its reference's rounds, alternating which goes first
            trace = self.against.round(lambda: self._case_round(warm), self.sampling, len(self._traces), warm)
        else:
            trace = self._case_round(warm)
        if not warm:
            energy.stop()
        self._traces.append(trace)
        self._progress.done(sum(r.output_tokens for r in trace.requests), trace.t_end - trace.t_start, trace.warmup)

    def _case_round(self, warm: bool) -> RoundTrace:
        if self.paired is not None:  # drafted and undrafted rounds back to back, likewise
            return self.paired.round(self.requests, self.sampling, len(self._traces), warm)
        if self.load is None:
            return run_round(self.engine, self.requests, self.batch_size, self.sampling, warmup=warm)
        return serve_round(self.engine, self.requests, self.batching, self.load, self.sampling, self.budget_s,
                           warmup=warm)


def tok_per_s(round_: RoundTrace) -> float | None:
    window = window_s(round_)
    return sum(r.output_tokens for r in round_.requests if r.ok) / window if window > 0 else None


def _ratios(candidate: Sequence[float | None], reference: Sequence[float | None]) -> list[float]:
    """Pair by pair; a pair missing a side (a round with nothing served) is left out."""
    return [c / r for c, r in zip(candidate, reference) if c and r]


@dataclass
class SweepCase:
    """Offered rate up to saturation: a closed loop at the engine's largest batch gives its capacity,
    then open-loop rounds at ``rates`` (default 0.25-3 x capacity), lowest first, until one is not
    sustained or the budget ends."""

    engine: Engine
    requests: Sequence[Request]
    batching: BatchingSpec
    sampling: SamplingSpec
    slo: SLO
    target: float  # SLO attainment a sustained rate reaches
    budget_s: float
    process: str
    rates: Sequence[float] | None
    say: Callable[[str], None]
    points: list[dict[str, Any]] = field(default_factory=list)

    @property
    def concurrency(self) -> int:
        return min(len(self.requests), int(self.batching.setting("max_batch", 16)))

    def run(self) -> None:
        t0 = time.perf_counter()
        closed = LoadSpec.closed(self.concurrency)
        serve_round(self.engine, self.requests[:self.concurrency], self.batching, closed, self.sampling,
                    self.budget_s)  # warm-up: one wave of the closed loop
        self.points.append(self._point(closed, self.budget_s - (time.perf_counter() - t0)))
        capacity = self.points[0]["req_per_s"] or 0.0
        for rate in sorted(self.rates) if self.rates else [float(f"{f * capacity:.3g}") for f in SWEEP_FRACTIONS]:
            left = self.budget_s - (time.perf_counter() - t0)
            if left <= 0 or rate <= 0:
                break
            load = (LoadSpec.burst(self.concurrency, rate) if self.process == "burst"
                    else LoadSpec(self.process, rate=rate, seed=self.sampling.seed))
            self.points.append(self._point(load, left))
            if not self.points[-1]["sustained"]:
                break

    def _point(self, load: LoadSpec, left_s: float) -> dict[str, Any]:
        trace = serve_round(self.engine, self.requests, self.batching, load, self.sampling, left_s)
        measured, _ = measure([trace], self.slo)
        found = curve_point(load, measured, generator_conditions([trace], load), self.slo, self.target)
        self.say(f"{load.label} -> {found['req_per_s'] or 0:.2f} req/s, SLO met by {found['slo_attainment'] or 0:.0%}"
                 f"{'' if found['sustained'] else ' (not sustained)'}")
        return found

    def result(self, driven: DrivenRounds) -> CaseResult:
        open_points = [p for p in self.points if p["rate"] is not None]
        sustained = [p["rate"] for p in open_points if p["sustained"]]
        measurements: dict[str, Measurement] = dict(driven.peak_memory)
        absent = dict(driven.memory_absent)
        if self.points:
            measurements["capacity_req_per_s"] = scalar("capacity_req_per_s", self.points[0]["req_per_s"] or 0.0)
        if sustained:
            measurements["saturation_req_per_s"] = scalar("saturation_req_per_s", max(sustained))
        else:
            absent["saturation_req_per_s"] = (f"no swept rate met the SLOs ({self.slo.label()}) for "
                                              f"{self.target:.0%} of requests")
        # Saturated: some swept load failed its SLOs. Otherwise the highest rate is only a lower bound.
        saturated = any(not p["sustained"] for p in self.points)
        conditions = {**driven.conditions, "sweep": {
            "slo": self.slo.to_dict(), "attainment_target": self.target, "budget_s": self.budget_s,
            "rates": [p["rate"] for p in open_points], "process": self.process, "saturated": saturated}}
        note = "no rate sustained"
        if sustained:
            note = (f"saturation {max(sustained):.2f} req/s" if saturated
                    else f"saturation >= {max(sustained):.2f} req/s (every swept rate sustained)")
        return CaseResult(measurements, absent, conditions, (note,), curve=tuple(self.points))


@dataclass
class OverheadCase:
    """Tokens/s through the recording path vs a bare ``model.generate`` loop, interleaved pairs
    (alternating which goes first), so the per-pair ratio cancels slow drift of the machine."""

    engine: Engine
    requests: Sequence[Request]
    sampling: SamplingSpec
    plan: RoundPlan
    say: Callable[[str], None]
    recorded: list[float] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)
    pairs: int = 0

    def one_pair(self) -> None:
        from pytest_inferlab.engines.transformers_engine import bare_generate

        rates = {}
        for path in pair_order(self.pairs, "recorded", "bare"):
            if path == "recorded":
                trace = run_round(self.engine, self.requests, 1, self.sampling)
                rates[path] = sum(r.output_tokens for r in trace.requests) / (trace.t_end - trace.t_start)
            else:
                tokens, seconds = bare_generate(self.engine, self.requests, self.sampling)
                rates[path] = tokens / seconds
        self.pairs += 1
        if self.pairs > self.plan.warmup:
            self.recorded.append(rates["recorded"])
            self.bare.append(rates["bare"])
        most = self.plan.warmup + (self.plan.rounds or self.plan.rule.max_rounds)
        self.say(f"pair {self.pairs}/{'<=' if self.plan.adaptive else ''}{most} recorded {rates['recorded']:.2f} tok/s, "
                 f"bare {rates['bare']:.2f} tok/s")

    def driven_plan(self) -> RoundPlan:
        """Adaptive pairs judge the recorded/bare ratio of each pair."""
        return dataclasses.replace(self.plan, figure=lambda: _ratios(self.recorded, self.bare))

    def result(self, driven: DrivenRounds, seed: int) -> CaseResult:
        """``harness_overhead_pct``: median over pairs of (1 - recorded / bare) with a bootstrap 95%
        interval; ``harness_cost_pct``: the recording path's own code timed in isolation against the
        round time (on a noisy machine the paired interval is wide; this one is not)."""
        from pytest_inferlab.engines.transformers_engine import harness_cost_s

        per_pair = tuple((1 - r / b) * 100 for r, b in zip(self.recorded, self.bare))
        overhead = statistics.median(per_pair)
        per_token_s, per_request_s = harness_cost_s(self.engine, self.requests[0], self.sampling)
        tokens = sum(r.max_new_tokens for r in self.requests)
        round_s = tokens / statistics.median(self.recorded)
        cost = (per_token_s * tokens + per_request_s * len(self.requests)) / round_s * 100
        measurements: dict[str, Measurement] = {
            "output_tok_per_s": Measurement("tok/s", statistics.median(self.recorded), tuple(self.recorded)),
            "bare_output_tok_per_s": Measurement("tok/s", statistics.median(self.bare), tuple(self.bare)),
            "harness_overhead_pct": Measurement("%", overhead, per_pair, statistics.fmean(per_pair), overhead,
                                                ci95=bootstrap_median_ci(per_pair, seed)),
            "harness_cost_pct": Measurement("%", cost, (per_token_s * 1e6, per_request_s * 1e6)),
            **driven.peak_memory,
        }
        return CaseResult(measurements, dict(driven.memory_absent), driven.conditions,
                          (f"overhead {overhead:+.2f}%, harness cost {cost:.3f}%",))
