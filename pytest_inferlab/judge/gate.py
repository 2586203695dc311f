"""The gate: a case's verdicts against its stored baseline, and the confirmation of a regression.

Pure verdict functions live in ``verdict.py``; this module adds what the gate knows about a run
(the baseline store, the false-alarm budget shared by every series of the run, the options) and
re-measures a timing regression before it stands.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from pytest_inferlab.judge.noise import NoisePool
from pytest_inferlab.judge.policy import MetricPolicy, policies_for, policy_of
from pytest_inferlab.judge.verdict import (REGRESSED, HostEvidence, NoiseModel, Pools, Verdict, alike, bad_ratio,
                                            blame_the_host, bonferroni_alpha, in_host_units,
                                            item_verdicts, judge_run, worst_slowdown)
from pytest_inferlab.measure.catalog import TIMING
from pytest_inferlab.record.baselines import BaselineError, BaselineStore
from pytest_inferlab.record.record import Record

# A re-measurement: the case's rounds again -> (measurements, conditions) of the new attempt.
Remeasure = Callable[[], tuple[dict[str, Any], dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class GateSettings:
    """What the gate reads of a run's options (no pytest below the plugin)."""

    alpha: float = 0.05  # the run's false-alarm budget, split over its series
    tolerance: Mapping[str, float] = field(default_factory=dict)  # the project's, per metric
    max_interference: float = 0.10
    confirm: int = 1
    no_gate: bool = False
    save_baseline: bool = False


@dataclass(frozen=True, slots=True)
class Judgement:
    """Verdicts of one case and what they were judged against."""

    verdicts: list[Verdict]
    baseline: dict[str, Any] | None  # {"path", "machine_id", "same_machine", "gating"} or {"error"}
    gating: bool
    warning: str | None = None
    invalid: str | None = None  # why the measurement cannot be trusted (kept in conditions.invalid)
    error: str | None = None  # the baseline could not be read: the case fails, its record is kept
    slowdown: float | None = None  # its worst timing regression as measured (before the host evidence)
    host: HostEvidence | None = None  # what decided whether the host or the case moved

    @property
    def regressed(self) -> list[str]:
        """Metrics that regressed, when this judgement gates (else nothing fails)."""
        return [v.metric for v in self.verdicts if v.outcome == REGRESSED] if self.gating else []


class Gate:
    """Judges records of one run; ``series`` (set at collection) divides the false-alarm budget."""

    def __init__(self, settings: GateSettings, baselines: BaselineStore) -> None:
        self.settings = settings
        self.baselines = baselines
        self.series = 1
        self._pools: dict[str, Pools] = {}  # per machine: its saved series' noise, raw and in host units
        self._slowdowns: list[float | None] = []  # this run's judged cases: each one's worst timing regression

    def invalid_reason(self, conditions: Mapping[str, Any]) -> str | None:
        """Why this case's timings cannot be trusted, or None."""
        share = conditions.get("other_cpu_share")
        if share is not None and share > self.settings.max_interference:
            return (f"other processes used {share:.0%} of the CPU during the case "
                    f"(limit {self.settings.max_interference:.0%}, --inferlab-max-interference)")
        if conditions.get("gpu_other_processes"):
            return f"other processes on the GPU during the case: pids {conditions['gpu_other_processes']}"
        generator = conditions.get("load_generator") or {}
        if generator.get("shortfall"):
            return generator["shortfall"]
        if generator.get("over_saturated"):
            return ("the server was over-saturated at this load (its queue kept growing); the round stopped early, "
                    "so its latencies describe a queue, not the server")
        if conditions.get("xdist_worker"):
            return "measured beside other pytest-xdist workers (parallel cases share the machine)"
        return None

    def judge(self, record: Record, test_tolerance: Mapping[str, Any], current_runs: int = 1) -> Judgement:
        """Verdicts of ``record`` against its stored baseline (saving happens at session end);
        ``current_runs``: how many runs its timings are the geometric mean of."""
        invalid = self.invalid_reason(record.conditions)
        try:
            baseline, same_machine = self.baselines.find(record.machine_id, record.test_id, record.spec_id)
        except BaselineError as exc:
            return Judgement([], {"error": str(exc)}, False, invalid=invalid, error=str(exc))
        policies = policies_for(sorted(record.measurements), self.settings.tolerance, test_tolerance)
        timing = sum(p.kind == "timing" for p in policies.values())
        alpha = bonferroni_alpha(self.settings.alpha, self.series * max(1, timing))
        current_ref = record.conditions.get("host_ref_s")
        pools = self.pools(record.machine_id) if same_machine else (None, None)
        verdicts = []
        for name, policy in policies.items():
            runs = baseline.runs(name) if baseline else []
            verdict = judge_run(policy, record.measurements[name].value, current_ref, runs, alpha,
                                NoiseModel(), invalid, pools, current_runs)
            if verdict is not None:
                verdicts.append(verdict)
        slowdown = worst_slowdown(verdicts, policies)
        evidence = self.host_evidence(current_ref, history_refs(baseline), alpha, slowdown)
        verdicts = blame_the_host(verdicts, policies, evidence)
        gating = same_machine and not self.settings.no_gate and not self.settings.save_baseline
        if baseline is None:
            return Judgement(verdicts, None, gating, None, invalid)
        verdicts += item_verdicts(record.evals, baseline.data.get("evals") or {}, alpha)
        reference = {"path": str(baseline.path), "machine_id": baseline.machine_id,
                     "same_machine": same_machine, "gating": gating}
        warning = None if same_machine else (
            f"compared with the baseline of another machine fingerprint ({baseline.machine_id}, "
            f"this one is {record.machine_id}): reported, never gating")
        return Judgement(verdicts, reference, gating, warning, invalid, slowdown=slowdown, host=evidence)

    def host_evidence(self, current_ref: float | None, refs: list[float], alpha: float,
                      slowdown: float | None) -> HostEvidence:
        """The host-speed reference against its history and, for a case that regressed, how many of the
        run's earlier judged cases regressed alike."""
        similar = sum(1 for s in self._slowdowns if s is not None and slowdown is not None and alike(s, slowdown))
        return HostEvidence.of(current_ref, refs, alpha, similar, len(self._slowdowns))

    def note(self, judgement: Judgement) -> None:
        """A case's final judgement joins the run's evidence (cases judged against a same-machine history)."""
        if judgement.baseline and judgement.baseline.get("same_machine") and not judgement.invalid:
            self._slowdowns.append(judgement.slowdown)

    def pools(self, machine_id: str) -> Pools:
        """The machine's noise pools (judge/noise.py) from every saved series of its baselines, once per run."""
        if machine_id not in self._pools:
            raw, host = [], []
            for data in self.baselines.machine_histories(machine_id):
                for name, entry in data["metrics"].items():
                    policy = policy_of(name)
                    if policy.kind != TIMING:
                        continue
                    runs = [(r["value"], r.get("host_ref_s")) for r in entry.get("history", []) if r.get("value")]
                    raw.append((name, [v for v, _ in runs]))
                    host.append((name, [in_host_units(v, ref, policy.higher_is_better) for v, ref in runs if ref]))
            self._pools[machine_id] = (NoisePool.of(raw), NoisePool.of(host))
        return self._pools[machine_id]

    def confirm(self, record: Record, judgement: Judgement, test_tolerance: Mapping[str, Any],
                remeasure: Remeasure, say: Callable[[str], None]) -> tuple[Judgement, list[dict[str, Any]]]:
        """Re-measure a case with a timing regression (--inferlab-confirm times): it stands only if every
        re-measurement is again slower than the tolerance allows and regresses, alone or judged together with
        the runs before it (their geometric mean, whose interval is narrower). A shared host's transient
        slowdowns hit every series of one run at once and do not repeat; a real regression repeats."""
        verdicts = list(judgement.verdicts)
        confirmations = []
        measured = [record]
        # the tolerances this case is judged with (the run's and the test's), not the catalog's defaults: a
        # re-measurement within them does not confirm, however far the first measurement went
        policies = policies_for(sorted(record.measurements), self.settings.tolerance, test_tolerance)
        for attempt in range(self.settings.confirm):
            suspects = {v.metric for v in verdicts if v.outcome == REGRESSED and policy_of(v.metric).noisy}
            if not suspects:
                break
            say(f"re-measuring to confirm a regression in {', '.join(sorted(suspects))} "
                f"({attempt + 1}/{self.settings.confirm})")
            measurements, conditions = remeasure()
            measured.append(dataclasses.replace(record, measurements=measurements, conditions=conditions))
            again = self.judge(measured[-1], test_tolerance)
            together = self.judge(geometric_mean_record(measured), test_tolerance, current_runs=len(measured))
            by_metric = {v.metric: v for v in again.verdicts}
            joint = {v.metric: v for v in together.verdicts}
            confirmations.append({"host_ref_s": conditions.get("host_ref_s"),
                                  "verdicts": {m: by_metric[m].outcome for m in sorted(suspects) if m in by_metric},
                                  "together": {m: joint[m].outcome for m in sorted(suspects) if m in joint}})
            verdicts = [merge(v, by_metric.get(v.metric), joint.get(v.metric),
                              policies.get(v.metric) or policy_of(v.metric))
                        if v.metric in suspects else v for v in verdicts]
        return dataclasses.replace(judgement, verdicts=verdicts), confirmations


def geometric_mean_record(records: Sequence[Record]) -> Record:
    """The first record with each measured value (and the host reference) replaced by the geometric mean over
    ``records`` (one case, measured again): what the gate judges as the mean of several runs."""
    def mean(values: list[Any]) -> float | None:
        return statistics.geometric_mean(values) if values and all(v and v > 0 for v in values) else None

    first = records[0]
    measurements = {}
    for name, entry in first.measurements.items():
        together = mean([r.value(name) for r in records])
        measurements[name] = dataclasses.replace(entry, value=together if together is not None else entry.value)
    refs = [r.conditions.get("host_ref_s") for r in records]
    return dataclasses.replace(first, measurements=measurements,
                               conditions={**first.conditions, "host_ref_s": mean(refs)})


def merge(first: Verdict, again: Verdict | None, together: Verdict | None = None,
          policy: MetricPolicy | None = None) -> Verdict:
    """A first regression and its re-measurement: confirmed (the re-measurement regressed, or it is slower than
    the tolerance allows and the runs together regressed), or inconclusive (a disturbance of the host)."""
    if again is not None and again.outcome == REGRESSED:
        return dataclasses.replace(first, reason=f"{first.reason}; confirmed when re-measured "
                                                 f"({again.ratio:.3f}x baseline)")
    slower = again is not None and policy is not None and (bad_ratio(again, policy) or 0) > 1 + policy.tolerance
    if slower and together is not None and together.outcome == REGRESSED:
        return dataclasses.replace(first, reason=f"{first.reason}; confirmed when re-measured ({again.ratio:.3f}x "
                                                 f"baseline; together: {together.reason})")
    seen = f"{again.outcome}, {again.ratio:.3f}x baseline" if again and again.ratio else "not measured"
    return dataclasses.replace(first, outcome="inconclusive",
                               reason=f"regressed at first ({first.reason}) but not when re-measured ({seen}): "
                                      "a disturbance of the host, not of the code")


def history_refs(baseline: Any) -> list[float]:
    """The host-speed reference of each run in a baseline's history (once per run)."""
    if baseline is None:
        return []
    by_run = {run.get("run_id"): run.get("host_ref_s") for entry in baseline.data["metrics"].values()
              for run in entry.get("history", []) if run.get("host_ref_s")}
    return list(by_run.values())
