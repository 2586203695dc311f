"""Paired verdicts on hand-made rounds, the lock-step baton's order, and A/B verdicts from records."""

import math
import random
import threading

import pytest

from handmade_records import make_record
from pytest_inferlab.judge.ab import compare_sides
from pytest_inferlab.judge.paired import judge_paired
from pytest_inferlab.measure.paired import MIN_PAIRS, paired_ratio
from pytest_inferlab.judge.policy import MetricPolicy
from pytest_inferlab.run.lockstep import Baton, Turn, choose

TPOT = MetricPolicy("tpot_ms", "timing", higher_is_better=False, tolerance=0.05)
TOKS = MetricPolicy("output_tok_per_s", "timing", higher_is_better=True, tolerance=0.05)


def drifting(n, shift, seed, drift=0.3, noise=0.02):
    """Pairs of rounds on a host whose speed wanders by +-``drift`` (log scale) between pairs, with a
    candidate ``shift`` slower: what a shared VM does to two sides measured close together."""
    rng = random.Random(seed)
    base, cand = [], []
    for _ in range(n):
        host = math.exp(rng.uniform(-drift, drift))
        base.append(40 * host * math.exp(rng.gauss(0, noise)))
        cand.append(40 * (1 + shift) * host * math.exp(rng.gauss(0, noise)))
    return base, cand


def test_pairing_cancels_a_drifting_host():
    base, cand = drifting(10, 0.20, seed=1)
    found = paired_ratio(base, cand, alpha=0.01)
    assert 1.15 < found.ratio < 1.25 and found.interval[0] > 1.05
    assert judge_paired(TPOT, base, cand, alpha=0.01).outcome == "regressed"
    # the same values judged unpaired (medians of each side) would be swamped by the drift
    assert found.spread < 0.05


@pytest.mark.parametrize("shift, outcome", [(0.0, "unchanged"), (-0.2, "improved"), (0.2, "regressed")])
def test_outcomes_follow_the_direction(shift, outcome):
    base, cand = drifting(12, shift, seed=2)
    assert judge_paired(TPOT, base, cand, alpha=0.01).outcome == outcome
    flipped = judge_paired(TOKS, [1 / b for b in base], [1 / c for c in cand], alpha=0.01)
    assert flipped.outcome == outcome


def test_false_alarms_of_identical_sides_stay_below_alpha():
    alarms = sum(judge_paired(TPOT, *drifting(8, 0.0, seed), alpha=0.01).outcome == "regressed" for seed in range(2000))
    assert alarms / 2000 <= 0.01


def test_too_few_pairs_and_bad_values_are_inconclusive_with_the_reason():
    verdict = judge_paired(TPOT, [40.0, 41.0], [60.0, 61.0], alpha=0.01)
    assert verdict.outcome == "inconclusive" and f">= {MIN_PAIRS}" in verdict.reason and "--inferlab-rounds" in verdict.reason
    assert paired_ratio([40, 0, 41], [40, 40, 40], 0.01) is None
    with pytest.raises(ValueError, match="as many rounds"):
        paired_ratio([1, 2, 3], [1, 2], 0.01)
    assert judge_paired(TPOT, [40.0] * 4, [40.0] * 4, 0.01, invalid="base: other processes").outcome == "invalid"


def test_baton_order_is_abba_and_the_side_behind_goes_first():
    assert choose(Turn(0, 1, 0), Turn(0, 1, 0)) == "base"
    assert choose(Turn(0, 1, 1), Turn(0, 1, 1)) == "candidate"
    assert choose(Turn(0, 1, 3), Turn(0, 0, 0)) == "candidate"  # candidate has not begun the case yet
    assert choose(Turn(1, 0, 0), Turn(0, 2, 0)) == "candidate"


def _side(baton, side, log, rounds):
    baton.request(side, "begin", "c", 0)
    for index in range(rounds):
        baton.request(side, "round", "c", index)
        log.append(f"{side[0]}{index}+")
        log.append(f"{side[0]}{index}-")  # nothing of the other side may come between these two
    baton.request(side, "end", "c", 0)
    baton.gone(side)


def test_baton_never_lets_the_sides_overlap_and_alternates_rounds():
    baton, log = Baton(["c"]), []
    threads = [threading.Thread(target=_side, args=(baton, s, log, 4)) for s in ("base", "candidate")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert all(log[i][:2] == log[i + 1][:2] for i in range(0, len(log), 2))  # each round whole
    assert [entry[:2] for entry in log[::2]] == ["b0", "c0", "c1", "b1", "b2", "c2", "c3", "b3"]


def test_a_side_that_is_gone_releases_the_other():
    baton = Baton(["c"])
    baton.gone("base")
    done = threading.Event()
    threading.Thread(target=lambda: (baton.request("candidate", "round", "c", 0), done.set()), daemon=True).start()
    assert done.wait(5)


def test_nothing_is_granted_until_both_sides_have_asked():
    baton = Baton(["c"])
    granted = threading.Event()
    threading.Thread(target=lambda: (baton.request("base", "begin", "c", 0), granted.set()), daemon=True).start()
    assert not granted.wait(0.3)  # the candidate is still starting: the base must not run beside it
    threading.Thread(target=lambda: baton.request("candidate", "begin", "c", 0), daemon=True).start()
    assert granted.wait(5)


def _record(test_id, tpot, invalid=None):
    return make_record(test_id=test_id, round_values={"tpot_ms": tpot, "ttft_ms": [100.0] * len(tpot)},
                       conditions={"invalid": invalid})


def test_compare_sides_pairs_shared_cases_and_lists_the_rest():
    base_tpot, cand_tpot = drifting(8, 0.3, seed=3)
    base = [_record("t::a", base_tpot), _record("t::old", base_tpot)]
    cand = [_record("t::a", cand_tpot), _record("t::new", cand_tpot)]
    outcome = compare_sides(base, cand, family_alpha=0.05)
    assert outcome.only_first == ["t::old"] and outcome.only_second == ["t::new"] and outcome.paired
    assert outcome.ab_json()["base_only"] == ["t::old"] and outcome.ab_json()["candidate_only"] == ["t::new"]
    assert [c.test_id for c in outcome.cases] == ["t::a"]
    assert outcome.alpha == pytest.approx(0.05 / 2)  # two timing series: tpot_ms and ttft_ms
    assert outcome.regressed == [("t::a", "tpot_ms")]
    verdicts = {v.metric: v for v in outcome.cases[0].verdicts}
    assert verdicts["ttft_ms"].outcome == "unchanged" and "x base over 8 interleaved pairs" in verdicts["tpot_ms"].reason


def test_an_invalid_side_makes_its_verdicts_invalid():
    tpot = [40.0] * 5
    outcome = compare_sides([_record("t::a", tpot, invalid="other processes used 40% of the CPU")], [_record("t::a", tpot)], 0.05)
    assert {v.outcome for v in outcome.cases[0].verdicts} == {"invalid"}
    assert "base: other processes used 40%" in outcome.cases[0].verdicts[0].reason
