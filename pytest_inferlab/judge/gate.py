"""The gate: a case's verdicts against its stored baseline, and the confirmation of a regression.

Pure verdict functions live in ``verdict.py``; this module adds what the gate knows about a run
(the baseline store, the false-alarm budget shared by every series of the run, the options) and
re-measures a timing regression before it stands.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from pytest_inferlab.judge.policy import policies_for, policy_of
from pytest_inferlab.judge.verdict import (REGRESSED, NoiseModel, Verdict, blame_the_host, bonferroni_alpha,
                                            host_slowdown, item_verdicts, judge_run)
from pytest_inferlab.plugin.options import Settings
from pytest_inferlab.record.baselines import BaselineError, BaselineStore
from pytest_inferlab.record.record import Record

# A re-measurement: the case's rounds again -> (measurements, conditions) of the new attempt.
Remeasure = Callable[[], tuple[dict[str, Any], dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Judgement:
    """Verdicts of one case and what they were judged against."""

    verdicts: list[Verdict]
    baseline: dict[str, Any] | None  # {"path", "machine_id", "same_machine", "gating"} or {"error"}
    gating: bool
    warning: str | None = None
    invalid: str | None = None  # why the measurement cannot be trusted (kept in conditions.invalid)
    error: str | None = None  # the baseline could not be read: the case fails, its record is kept

    @property
    def regressed(self) -> list[str]:
        """Metrics that regressed, when this judgement gates (else nothing fails)."""
        return [v.metric for v in self.verdicts if v.outcome == REGRESSED] if self.gating else []


class Gate:
    """Judges records of one run; ``series`` (set at collection) divides the false-alarm budget."""

    def __init__(self, settings: Settings, baselines: BaselineStore) -> None:
        self.settings = settings
        self.baselines = baselines
        self.series = 1

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

    def judge(self, record: Mapping[str, Any], test_tolerance: Mapping[str, Any]) -> Judgement:
        """Verdicts of ``record`` (its JSON form) against its stored baseline (saving happens at session end)."""
        invalid = self.invalid_reason(record["conditions"])
        try:
            baseline, same_machine = self.baselines.find(record["machine_id"], record["test_id"], record["spec_id"])
        except BaselineError as exc:
            return Judgement([], {"error": str(exc)}, False, invalid=invalid, error=str(exc))
        policies = policies_for(sorted(record["measurements"]), self.settings.tolerance, test_tolerance)
        timing = sum(p.kind == "timing" for p in policies.values())
        alpha = bonferroni_alpha(self.settings.alpha, self.series * max(1, timing))
        current_ref = record["conditions"].get("host_ref_s")
        verdicts = []
        for name, policy in policies.items():
            runs = baseline.runs(name) if baseline else []
            verdict = judge_run(policy, record["measurements"][name]["value"], current_ref, runs, alpha,
                                NoiseModel(), invalid)
            if verdict is not None:
                verdicts.append(verdict)
        verdicts = blame_the_host(verdicts, policies, host_slowdown(current_ref, history_refs(baseline), alpha))
        gating = same_machine and not self.settings.no_gate and not self.settings.save_baseline
        if baseline is None:
            return Judgement(verdicts, None, gating, None, invalid)
        verdicts += item_verdicts(record.get("evals") or {}, baseline.data.get("evals") or {}, alpha)
        reference = {"path": str(baseline.path), "machine_id": baseline.machine_id,
                     "same_machine": same_machine, "gating": gating}
        warning = None if same_machine else (
            f"compared with the baseline of another machine fingerprint ({baseline.machine_id}, "
            f"this one is {record['machine_id']}): reported, never gating")
        return Judgement(verdicts, reference, gating, warning, invalid)

    def confirm(self, record: Record, judgement: Judgement, test_tolerance: Mapping[str, Any],
                remeasure: Remeasure, say: Callable[[str], None]) -> tuple[Judgement, list[dict[str, Any]]]:
        """Re-measure a case with a timing regression (--inferlab-confirm times): it stands only if
        every re-measurement regresses too. A shared host's transient slowdowns hit every series of
        one run at once; a real regression repeats."""
        verdicts = list(judgement.verdicts)
        confirmations = []
        for attempt in range(self.settings.confirm):
            suspects = {v.metric for v in verdicts if v.outcome == REGRESSED and policy_of(v.metric).noisy}
            if not suspects:
                break
            say(f"re-measuring to confirm a regression in {', '.join(sorted(suspects))} "
                f"({attempt + 1}/{self.settings.confirm})")
            measurements, conditions = remeasure()
            again = self.judge(dataclasses.replace(record, measurements=measurements, conditions=conditions).to_json(),
                               test_tolerance)
            by_metric = {v.metric: v for v in again.verdicts}
            confirmations.append({"host_ref_s": conditions.get("host_ref_s"),
                                  "verdicts": {m: by_metric[m].outcome for m in sorted(suspects) if m in by_metric}})
            verdicts = [merge(v, by_metric.get(v.metric)) if v.metric in suspects else v for v in verdicts]
        return dataclasses.replace(judgement, verdicts=verdicts), confirmations


def merge(first: Verdict, again: Verdict | None) -> Verdict:
    """A first regression and its re-measurement: confirmed, or inconclusive (a disturbance of the host)."""
    if again is not None and again.outcome == REGRESSED:
        return dataclasses.replace(first, reason=f"{first.reason}; confirmed when re-measured "
                                                 f"({again.ratio:.3f}x baseline)")
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
