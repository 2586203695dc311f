"""Two runs compared case by case (``inferlab compare RUN_A RUN_B``), with the gate's statistics.
Pure: records in (as read, typed), verdicts out.

A case is the same case in both runs when its test id and spec id are; every metric both records
measured is judged for B against A:

- runs made apart (the usual case: last night's CI artifact and today's): A is B's baseline with a
  history of one run, exactly as the gate would judge it (``judge_run``): timing metrics get the
  gate's assumed run-to-run noise, so a change is called only by deterministic metrics, counts and
  items (McNemar), and timing intervals show how much a single pair of runs can tell;
- the two sides of one ``inferlab ab`` (lock-step: their manifests name the same turn socket): the
  timing metrics are judged on the paired per-round ratios, as ``inferlab ab`` judges them.

The false-alarm budget is split over every judged timing series (Bonferroni), as the gate does.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from pytest_inferlab.judge.ab import compare_sides, invalid_sides
from pytest_inferlab.judge.comparison import CaseComparison, Comparison
from pytest_inferlab.judge.policy import policies_for
from pytest_inferlab.judge.verdict import REGRESSED, NoiseModel, Verdict, bonferroni_alpha, item_verdicts, judge_run
from pytest_inferlab.measure.catalog import TIMING
from pytest_inferlab.record.record import Record

AB_TURNS_OPTION = "--inferlab-ab-turns"


def _key(record: Record) -> tuple[str, str]:
    return record.test_id, record.spec_id


def lockstep_pair(manifest_a: Mapping[str, Any] | None, manifest_b: Mapping[str, Any] | None) -> bool:
    """Whether two runs are the two sides of one A/B (the same turn socket in both commands)."""
    def turns(manifest: Mapping[str, Any] | None) -> str | None:
        for arg in (manifest or {}).get("command") or []:
            if arg.startswith(AB_TURNS_OPTION + "="):
                return arg.split("=", 1)[1]
        return None

    return turns(manifest_a) is not None and turns(manifest_a) == turns(manifest_b)


def compare_runs(a: Sequence[Record], b: Sequence[Record], family_alpha: float = 0.05,
                 tolerance: Mapping[str, float] | None = None, paired: bool = False) -> Comparison:
    """B judged against A for every case both measured, in B's order."""
    tolerance = tolerance or {}
    by_a, by_b = {_key(r): r for r in a}, {_key(r): r for r in b}
    shared = [k for k in by_b if k in by_a]
    names = {k: sorted(set(by_a[k].measurements) & set(by_b[k].measurements)) for k in shared}
    policies = {k: policies_for(names[k], tolerance, {}) for k in shared}
    timing = sum(p.kind == TIMING for k in shared for p in policies[k].values())
    alpha = bonferroni_alpha(family_alpha, timing)
    paired_verdicts: dict[str, dict[str, Verdict]] = {}
    if paired:
        outcome = compare_sides([by_a[k] for k in shared], [by_b[k] for k in shared], family_alpha, tolerance)
        paired_verdicts = {c.test_id: {v.metric: v for v in c.verdicts} for c in outcome.cases}
        alpha = outcome.alpha
    cases = []
    for key in shared:
        ra, rb = by_a[key], by_b[key]
        invalid = invalid_sides(ra, rb, ("A", "B"))
        verdicts = []
        for name, policy in policies[key].items():
            if policy.kind == TIMING and name in paired_verdicts.get(key[0], {}):
                verdicts.append(paired_verdicts[key[0]][name])
                continue
            before = ra.value(name)
            history = [(before, ra.conditions.get("host_ref_s"))] if before is not None else []
            verdict = judge_run(policy, rb.value(name), rb.conditions.get("host_ref_s"), history,
                                alpha, NoiseModel(), invalid)
            if verdict is not None:
                verdicts.append(verdict)
        verdicts += item_verdicts(rb.evals, ra.evals, alpha)
        cases.append(CaseComparison(key[0], key[1], verdicts))
    return Comparison(paired, cases, [k[0] for k in by_a if k not in by_b], [k[0] for k in by_b if k not in by_a],
                         alpha)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:(width - 1) // 2] + "…" + text[len(text) - (width - 1 - (width - 1) // 2):]


def format_comparison(result: Comparison, run_a: str, run_b: str, show_all: bool = False) -> list[str]:
    """The terminal table: per case and metric B / A with its interval and verdict (unchanged and new
    ones only with ``show_all``), the counts, the one-side cases."""
    how = ("paired rounds (the two sides of one A/B)" if result.paired else
           "B against A as its baseline of one run, as the gate would judge it: timing intervals carry the "
           "gate's assumed run-to-run noise; for a timing verdict compare paired (inferlab ab) or save 3+ baselines")
    lines = [f"A: {run_a}", f"B: {run_b}", f"statistics: {how}; alpha {result.alpha:.2g} per timing series", ""]
    header = f"{'case':<44}  {'metric':<26}  {'B / A':>7}  {'95% interval':<16}  verdict"
    lines += [header, "-" * len(header)]
    counts: dict[str, int] = {}
    for case in result.cases:
        for v in case.verdicts:
            counts[v.outcome] = counts.get(v.outcome, 0) + 1
            if not show_all and v.outcome in ("unchanged", "new"):
                continue
            ratio = f"{v.ratio:.3f}" if v.ratio is not None else "-"
            interval = f"[{v.interval[0]:.3f}, {v.interval[1]:.3f}]" if v.interval else "-"
            lines.append(f"{_cut(case.test_id, 44):<44}  {_cut(v.metric, 26):<26}  {ratio:>7}  {interval:<16}  "
                         f"{v.outcome.upper() if v.outcome == REGRESSED else v.outcome}")
    lines.append("")
    lines.append(f"{len(result.cases)} case(s) in both runs: "
                 + (", ".join(f"{n} {o}" for o, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "no metric in common"))
    if not show_all:
        lines.append("(unchanged metrics left out: --all lists every one)")
    for title, ids in (("only in A", result.only_first), ("only in B", result.only_second)):
        if ids:
            lines.append(f"{title} ({len(ids)}), not compared:")
            lines += [f"  {test_id}" for test_id in ids]
    return lines
