"""The gate's confirmation: a first regression and its re-measurement, judged alone and together."""

import math

from handmade_records import make_record

from pytest_inferlab.judge.gate import geometric_mean_record, merge
from pytest_inferlab.judge.policy import policy_of
from pytest_inferlab.judge.verdict import judge_timing

TPOT = policy_of("tpot_ms")
HISTORY = [30.0, 30.9, 29.4, 30.4, 29.7, 30.6, 29.2, 30.1, 31.0, 29.8]  # ten saved runs, ~2% run-to-run noise


def test_two_runs_narrow_the_interval_by_the_mean():
    one = judge_timing(TPOT, 34.5, HISTORY, 0.01)
    two = judge_timing(TPOT, 34.5, HISTORY, 0.01, runs=2)
    width = lambda v: math.log(v.interval[1] / v.interval[0])  # noqa: E731
    assert math.isclose(width(two) / width(one), math.sqrt(1 / 2 + 1 / 10) / math.sqrt(1 + 1 / 10))
    assert "(the mean of 2 runs)" in two.reason


def test_a_repeated_slowdown_is_confirmed_by_the_runs_together():
    first = judge_timing(TPOT, 34.5, HISTORY, 0.01)
    again = judge_timing(TPOT, 32.9, HISTORY, 0.01)  # +9%, alone not beyond doubt
    together = judge_timing(TPOT, math.sqrt(34.5 * 32.9), HISTORY, 0.01, runs=2)
    assert first.outcome == "regressed" and again.outcome == "inconclusive" and together.outcome == "regressed"
    assert merge(first, again, together, TPOT).outcome == "regressed"
    assert merge(first, again).outcome == "inconclusive"  # without the joint verdict: alone it is not confirmed


def test_a_transient_slowdown_is_not_confirmed_though_the_mean_is_slow():
    first = judge_timing(TPOT, 60.0, HISTORY, 0.01)
    again = judge_timing(TPOT, 30.2, HISTORY, 0.01)  # the host's stall is gone
    together = judge_timing(TPOT, math.sqrt(60.0 * 30.2), HISTORY, 0.01, runs=2)
    assert together.outcome == "regressed"
    verdict = merge(first, again, together, TPOT)
    assert verdict.outcome == "inconclusive" and "not when re-measured" in verdict.reason


def test_the_mean_record_takes_geometric_means_and_keeps_the_rest():
    records = [make_record({"tpot_ms": {"value": 40.0, "unit": "ms"}, "failed": {"value": 0}},
                           conditions={"host_ref_s": 0.1, "other": 1}),
               make_record({"tpot_ms": {"value": 10.0, "unit": "ms"}, "failed": {"value": 0}},
                           conditions={"host_ref_s": 0.4})]
    mean = geometric_mean_record(records)
    assert math.isclose(mean["tpot_ms"], 20.0) and mean.measurements["tpot_ms"].unit == "ms"
    assert mean["failed"] == 0  # no log of 0: the first run's value
    assert math.isclose(mean.conditions["host_ref_s"], 0.2) and mean.conditions["other"] == 1
    assert records[0]["tpot_ms"] == 40.0  # the records are not changed
