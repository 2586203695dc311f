"""Verdicts on hand-made histories: direction, tolerance, noise, invalid and new."""

import dataclasses
import math
import random
import statistics

import pytest

from pytest_inferlab.judge.policy import MetricPolicy, parse_tolerances, policies_for
from pytest_inferlab.judge.verdict import (HostEvidence, NoiseModel, Verdict, blame_the_host, bonferroni_alpha,
                                            host_slowdown, judge, judge_items, judge_run, mcnemar)

TPOT = MetricPolicy("tpot_ms", "timing", higher_is_better=False, tolerance=0.05)
TOKS = MetricPolicy("output_tok_per_s", "timing", higher_is_better=True, tolerance=0.05)
HISTORY = [40.0, 40.4, 39.6, 40.2, 39.8, 40.1, 39.9, 40.3]  # ~0.7% run-to-run noise


@pytest.mark.parametrize("current, outcome", [
    (40.1, "unchanged"), (48.0, "regressed"), (33.0, "improved"), (42.5, "inconclusive"),
])
def test_timing_lower_is_better(current, outcome):
    verdict = judge(TPOT, current, HISTORY, alpha=0.01)
    assert verdict.outcome == outcome, verdict.reason
    assert verdict.interval[0] < verdict.ratio < verdict.interval[1]


@pytest.mark.parametrize("current, outcome", [(25.0, "unchanged"), (20.0, "regressed"), (30.0, "improved")])
def test_timing_direction_flips_for_higher_is_better(current, outcome):
    history = [25.0, 25.2, 24.8, 25.1, 24.9]
    assert judge(TOKS, current, history, alpha=0.01).outcome == outcome


def test_noisy_history_widens_the_interval_until_a_change_is_inconclusive():
    noisy = [40.0, 48.0, 34.0, 44.0, 37.0]  # ~14% run-to-run noise, as on a shared 2-core VM
    assert judge(TPOT, 46.0, noisy, alpha=0.01).outcome == "inconclusive"
    assert judge(TPOT, 46.0, HISTORY, alpha=0.01).outcome == "regressed"


def test_short_history_uses_the_prior_noise():
    verdict = judge(TPOT, 44.0, [40.0], alpha=0.01, noise=NoiseModel(prior_run_noise=0.10))
    assert verdict.outcome == "inconclusive" and "assumed (1 run(s) in history)" in verdict.reason


@pytest.mark.parametrize("current", [80.0, 20.0])
def test_an_assumed_noise_figure_never_calls_a_change(current):
    """The issue's case: one run in the history, the host 1.6x slower four minutes later. A guessed
    noise figure must not gate; the verdict says what would decide it."""
    verdict = judge(TPOT, current, [40.0], alpha=0.01)
    assert verdict.outcome == "inconclusive"
    assert "run-to-run noise is measured from 3" in verdict.reason and "inferlab ab BASE" in verdict.reason
    assert judge(TPOT, current, HISTORY, alpha=0.01).outcome in ("regressed", "improved")  # measured: it may


def _verdicts(ratios, outcome="regressed", reason="1.5x baseline"):
    return [Verdict(name, outcome, 1.0, 1.0, ratio, (ratio * 0.9, ratio * 1.1), 0.05, reason)
            for name, ratio in ratios.items()]


POLICIES = {"ttft_ms": MetricPolicy("ttft_ms", "timing", False, 0.05), "tpot_ms": TPOT, "output_tok_per_s": TOKS,
            "peak_mem_bytes": MetricPolicy("peak_mem_bytes", "deterministic", False, 0.05)}


STEADY = HostEvidence(reference_ratio=1.01, reference_slower=False)
SLOWER = HostEvidence(reference_ratio=1.5, reference_slower=True)
# The planted 40 ms per decoder forward pass (2026-12-05): every series 1.44-1.58x worse
FORWARD_40MS = {"ttft_ms": 1.44, "tpot_ms": 1.575, "output_tok_per_s": 1 / 1.55}


def test_a_case_that_moved_as_a_whole_with_a_steady_host_reference_is_a_regression():
    """Every series moved together, the host-speed reference did not: the code slowed (a slower kernel,
    a lost fusion, a wrong dtype move every series alike), and the gate says so."""
    judged = blame_the_host(_verdicts(FORWARD_40MS), POLICIES, STEADY)
    assert {v.outcome for v in judged} == {"regressed"}
    assert "the host-speed reference was steady (1.01x): the case moved, not the host" in judged[0].reason


def test_an_unchanged_case_on_a_host_that_slowed_is_set_aside_because_the_host_reference_says_so():
    moved = _verdicts({"ttft_ms": 1.5, "tpot_ms": 1.5, "output_tok_per_s": 1 / 1.5})
    judged = blame_the_host(moved, POLICIES, SLOWER)
    assert {v.outcome for v in judged} == {"inconclusive"}
    assert "the host-speed reference was slower than in the history (1.50x), so the host moved" in judged[0].reason
    assert "inferlab ab BASE" in judged[0].reason


def test_a_verdict_in_host_speed_units_stands_on_a_slower_host():
    calibrated = _verdicts({"tpot_ms": 1.3}, reason="in host-speed units: 1.3x baseline")
    assert blame_the_host(calibrated, POLICIES, SLOWER)[0].outcome == "regressed"


def test_without_a_host_reference_the_runs_other_cases_decide():
    alone = HostEvidence(alike=1, judged=4)  # one earlier case of four regressed alike: this case moved
    crowd = HostEvidence(alike=3, judged=4)  # three of four: the host moved
    assert blame_the_host(_verdicts(FORWARD_40MS), POLICIES, alone)[0].outcome == "regressed"
    judged = blame_the_host(_verdicts(FORWARD_40MS), POLICIES, crowd)
    assert judged[0].outcome == "inconclusive" and "3 of 4 earlier case(s) of this run regressed alike" in judged[0].reason
    assert blame_the_host(_verdicts(FORWARD_40MS), POLICIES, HostEvidence(alike=1, judged=1))[0].outcome == "regressed"


def test_non_timing_and_non_regressed_verdicts_are_left_alone():
    planted = _verdicts({"ttft_ms": 1.0, "tpot_ms": 1.55, "peak_mem_bytes": 1.5})
    planted[0] = dataclasses.replace(planted[0], outcome="unchanged")
    judged = blame_the_host(planted, POLICIES, SLOWER)
    assert [v.outcome for v in judged] == ["unchanged", "inconclusive", "regressed"]


def test_the_host_reference_moved_only_beyond_its_own_noise_and_the_tolerance():
    refs = [0.062, 0.0615, 0.0609, 0.0625, 0.063, 0.0624, 0.0626, 0.0624, 0.0606]  # ~1.3% noise
    assert host_slowdown(0.0635, refs, alpha=0.01) is None  # 2% slower: within the tolerance
    assert host_slowdown(0.080, refs, alpha=0.01) == pytest.approx(0.080 / statistics.geometric_mean(refs), rel=1e-6)
    assert host_slowdown(0.080, [0.062], alpha=0.01) is None  # one run: its noise is not known
    assert host_slowdown(None, refs, alpha=0.01) is None and host_slowdown(0.08, [], alpha=0.01) is None


def test_false_alarm_rate_of_unchanged_runs_stays_below_alpha():
    rng = random.Random(0)
    alarms = 0
    for _ in range(2000):
        history = [40 * math.exp(rng.gauss(0, 0.03)) for _ in range(10)]
        current = 40 * math.exp(rng.gauss(0, 0.03))
        alarms += judge(TPOT, current, history, alpha=0.01).outcome == "regressed"
    assert alarms / 2000 <= 0.01


def test_memory_is_deterministic_and_counts_any_increase():
    mem = MetricPolicy("peak_mem_bytes", "deterministic", False, 0.05)
    assert judge(mem, 104.0, [100.0], 0.01).outcome == "unchanged"
    assert judge(mem, 106.0, [90.0, 100.0], 0.01).outcome == "regressed"  # against the latest
    assert judge(mem, 90.0, [100.0], 0.01).outcome == "improved"
    failed = MetricPolicy("failed_requests", "count", False, 0.0)
    assert judge(failed, 1.0, [0.0], 0.01).outcome == "regressed"
    assert judge(failed, 0.0, [0.0], 0.01).outcome == "unchanged"


def test_new_invalid_missing_and_info():
    assert judge(TPOT, 40.0, [], 0.01).outcome == "new"
    assert judge(TPOT, 40.0, HISTORY, 0.01, invalid="other processes used 40% of the CPU").outcome == "invalid"
    assert judge(TPOT, None, HISTORY, 0.01).outcome == "invalid"
    assert judge(MetricPolicy("input_tokens", "info", True, 0.0), 3.0, [3.0], 0.01) is None


def test_bonferroni_divides_the_budget():
    assert bonferroni_alpha(0.05, 10) == pytest.approx(0.005)
    assert bonferroni_alpha(0.05, 0) == 0.05


def test_mcnemar_on_paired_items():
    base = [True] * 80 + [False] * 20
    worse = [True] * 60 + [False] * 40  # lost 20, gained 0
    assert mcnemar(base, worse)[:2] == (20, 0) and mcnemar(base, worse)[2] < 1e-5
    assert judge_items("acc", base, worse, alpha=0.01).outcome == "regressed"
    assert judge_items("acc", base, base, alpha=0.01).outcome == "unchanged"
    swapped = [False] * 5 + [True] * 75 + [True] * 5 + [False] * 15  # lost 5, gained 5
    assert judge_items("acc", base, swapped, alpha=0.01).outcome == "unchanged"
    with pytest.raises(ValueError, match="same items"):
        mcnemar([True], [True, False])


def test_the_exact_mcnemar_p_value_is_scipys_binomial_test():
    from scipy.stats import binomtest

    for lost in range(0, 25, 3):
        for gained in range(0, 25, 4):
            base = [True] * lost + [False] * gained
            now = [False] * lost + [True] * gained
            expected = 1.0 if lost + gained == 0 else binomtest(min(lost, gained), lost + gained, 0.5).pvalue
            assert mcnemar(base, now) == (lost, gained, pytest.approx(expected, rel=1e-12))


def test_policy_overrides_and_errors():
    policies = policies_for(["tpot_ms", "input_tokens", "ttft_ms"], {"tpot_ms": 0.02}, {"ttft_ms": 0.3})
    assert policies["tpot_ms"].tolerance == 0.02 and policies["ttft_ms"].tolerance == 0.3
    assert policies["input_tokens"].kind == "info"
    assert parse_tolerances("tpot_ms=0.03, ttft_ms=0.2", "ini") == {"tpot_ms": 0.03, "ttft_ms": 0.2}
    with pytest.raises(ValueError, match="ini: 'tpot_ms' is not METRIC=TOLERANCE"):
        parse_tolerances("tpot_ms", "ini")
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['tpot'\]"):
        policies_for(["tpot_ms"], {"tpot": 0.1}, {})
    with pytest.raises(ValueError, match="is not a number"):
        policies_for(["tpot_ms"], {}, {"tpot_ms": "fast"})


def _drifting(values, refs):
    return list(zip(values, refs))


def test_host_speed_calibration_is_used_when_it_makes_the_history_tighter():
    # the host's speed drifts: raw TPOT follows the reference, so TPOT / reference is steady
    refs = [0.070, 0.077, 0.063, 0.084, 0.070, 0.066, 0.080, 0.073]
    runs = _drifting([40.0 * r / 0.070 for r in refs], refs)
    slowed = 40.0 * 1.15 * 0.081 / 0.070  # 15% slower code, measured in a slow hour of the host
    raw = judge_run(TPOT, slowed, None, runs, alpha=0.01)
    calibrated = judge_run(TPOT, slowed, 0.081, runs, alpha=0.01)
    assert raw.outcome == "inconclusive", raw.reason
    assert calibrated.outcome == "regressed", calibrated.reason
    assert calibrated.reason.startswith("in host-speed units")
    assert calibrated.current == slowed and math.isclose(calibrated.ratio, 1.15, rel_tol=1e-9)
    # the same code in a fast hour of the host: unchanged once calibrated
    assert judge_run(TPOT, 40.0 * 0.063 / 0.070, 0.063, runs, alpha=0.01).outcome == "unchanged"


def test_calibration_is_skipped_when_the_reference_only_adds_noise_or_is_missing():
    refs = [0.070, 0.090, 0.060, 0.085, 0.065, 0.080, 0.062, 0.088]  # a reference that does not track
    runs = _drifting(HISTORY, refs)
    steady = judge_run(TPOT, 40.1, 0.090, runs, alpha=0.01)
    assert steady.outcome == "unchanged" and not steady.reason.startswith("in host-speed units")
    assert judge_run(TPOT, 40.1, 0.07, _drifting(HISTORY[:2], refs[:2]), alpha=0.01).reason == \
        judge(TPOT, 40.1, HISTORY[:2], alpha=0.01).reason  # too few calibrated runs
    assert judge_run(TPOT, 40.1, None, runs, alpha=0.01) == judge(TPOT, 40.1, HISTORY, alpha=0.01)
    rates = judge_run(TOKS, 25.0 * 0.07 / 0.08, 0.08, _drifting([25.0 * 0.07 / r for r in refs], refs), alpha=0.01)
    assert rates.outcome == "unchanged" and rates.reason.startswith("in host-speed units")
