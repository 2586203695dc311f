"""The machine's pooled run-to-run noise (judge/noise.py): three saved runs give a usable interval, a
noisier series keeps its own, and on simulated histories the gate keeps its false alarms while it
finds +15% (the statistics issue's target on this machine)."""

import math
import random

import pytest

from pytest_inferlab.judge.noise import NoisePool, moderated, spread_of
from pytest_inferlab.judge.policy import MetricPolicy
from pytest_inferlab.judge.verdict import bonferroni_alpha, judge

TPOT = MetricPolicy("tpot_ms", "timing", higher_is_better=False, tolerance=0.05)
THREE = [76.9, 77.9, 77.9]  # the three saved runs (TPOT ms, run-to-run spread under 1%)


def machine(series=12, runs=3, sd=0.01, seed=0, metric="tpot_ms", judged=THREE):
    """A machine's pool: ``series`` saved series like the judged one, and the judged one (the gate pools
    every saved series of a machine; a series' prior leaves itself out)."""
    rng = random.Random(seed)
    others = [(metric, [40 * math.exp(rng.gauss(0, sd)) for _ in range(runs)]) for _ in range(series)]
    return NoisePool.of([*others, (metric, judged)])


def test_the_pool_sums_spreads_and_leaves_the_series_itself_out():
    pool = NoisePool.of([("tpot_ms", [1.0, 2.0]), ("tpot_ms", [1.0, 1.0, 1.0]), ("ttft_ms", [3.0])])
    assert pool.series == 2 and pool.by_metric["tpot_ms"].df == 3 and "ttft_ms" not in pool.by_metric
    assert spread_of([1.0, 2.0]).ss == pytest.approx(math.log(2) ** 2 / 2)
    assert NoisePool.of([("tpot_ms", THREE)]).prior("tpot_ms", THREE) is None  # only itself: no prior


def test_three_runs_borrow_the_machines_degrees_of_freedom():
    pool = machine()
    alpha = bonferroni_alpha(0.05, 10)
    own = judge(TPOT, 77.9 * 1.133, THREE, alpha)  # the issue's +13% (15 ms per forward)
    pooled = judge(TPOT, 77.9 * 1.133, THREE, alpha, pool=pool)
    assert own.outcome == "inconclusive" and pooled.outcome == "regressed", (own.reason, pooled.reason)
    assert "pooled with tpot_ms over the machine's other cases" in pooled.reason
    assert judge(TPOT, 77.6, THREE, alpha, pool=pool).outcome == "unchanged"


def test_a_series_noisier_than_the_pool_keeps_its_own_noise():
    noisy = [60.0, 78.0, 95.0]
    found = moderated(noisy, machine(judged=noisy).prior("tpot_ms", noisy), 0.01)
    assert "noisier than the machine's pool: kept its own" in found.source and found.df == 2
    assert judge(TPOT, 90.0, noisy, 0.005, pool=machine(judged=noisy)).outcome == "inconclusive"


def test_a_thin_metric_pool_falls_back_to_every_timing_metric():
    pool = NoisePool.of([("ttft_ms", [40.0, 40.5, 39.6])] * 4 + [("tpot_ms", THREE)])
    prior = pool.prior("tpot_ms", THREE)
    assert prior is not None and prior[1] == "every timing metric of the machine's saved cases"


@pytest.mark.parametrize("sd, least", [(0.01, 900), (0.02, 750)])
def test_on_simulated_histories_false_alarms_stay_rare_and_15_percent_is_found(sd, least):
    """1,000 simulated cases of a machine whose runs differ by ``sd`` (log): three saved runs each, a
    pool of 20 such series, a run's budget split over 10 series. Unchanged: at most 1% false alarms.
    +15%: found in at least 90% at this VM's 1% run-to-run noise (the issue's 76.9/77.9/77.9 ms); at 2%
    in 83% (a one-sided test at 0.5% against a 5% tolerance cannot do better with three runs)."""
    rng = random.Random(7)
    alpha = bonferroni_alpha(0.05, 10)
    alarms = found = 0
    for _ in range(1000):
        history = [40 * math.exp(rng.gauss(0, sd)) for _ in range(3)]
        pool = machine(series=20, sd=sd, seed=rng.randrange(10**9), judged=history)
        alarms += judge(TPOT, 40 * math.exp(rng.gauss(0, sd)), history, alpha, pool=pool).outcome == "regressed"
        found += judge(TPOT, 46 * math.exp(rng.gauss(0, sd)), history, alpha, pool=pool).outcome == "regressed"
    assert alarms <= 10 and found >= least, (alarms, found)
