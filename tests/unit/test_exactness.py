"""Three-state exactness (measure/exactness.py) on hand-made outputs: exact, near tie, diverged."""

import pytest

from pytest_inferlab.measure.exactness import (DIVERGED, EXACT, NEAR_TIE, Exactness, Mismatch, first_mismatch,
                                               judge_exactness, worst)
from pytest_inferlab.measure.result import CaseResult

REFERENCE = {0: (1, 2, 3), 1: (4, 5, 6)}


def no_margin(found):
    raise AssertionError("an exact output needs no margin")


def test_first_mismatch_names_request_position_and_both_tokens():
    assert first_mismatch(REFERENCE, {0: (1, 2, 3), 1: (4, 5, 6)}) is None
    assert first_mismatch(REFERENCE, {0: (1, 2, 3), 1: (4, 9, 6)}) == Mismatch(1, 1, 5, 9)
    assert first_mismatch(REFERENCE, {0: (1, 2), 1: (4, 5, 6)}) == Mismatch(0, 2, 3, None)  # stopped early


def test_equal_outputs_are_exact_and_every_round_is_compared():
    check = judge_exactness(REFERENCE, [dict(REFERENCE), dict(REFERENCE)], "sequential greedy decoding", no_margin)
    assert check == Exactness(EXACT, 4, "sequential greedy decoding")
    assert check.lossless and "exactly" in check.describe()


@pytest.mark.parametrize("gap, state, lossless", [(0.0, NEAR_TIE, True), (0.09, NEAR_TIE, True),
                                                  (0.26, DIVERGED, False), (None, DIVERGED, False)])
def test_a_mismatch_is_a_near_tie_only_within_the_margin(gap, state, lossless):
    """An exact tie in the last bit (0.00 nats, seen on a GPTQ build) is a near tie, never a failure;
    a wider gap, or one the engine cannot score, is a divergence."""
    check = judge_exactness(REFERENCE, [dict(REFERENCE), {0: (1, 2, 3), 1: (4, 9, 6)}], "the target without drafting",
                            lambda found: gap)
    assert (check.state, check.lossless) == (state, lossless)
    assert check.mismatch == Mismatch(1, 1, 5, 9, gap)
    text = check.describe()
    assert ("up to a near tie" in text) == lossless and ("DIVERGED" in text) == (not lossless)


def test_a_length_difference_is_a_divergence_without_asking_for_a_margin():
    check = judge_exactness(REFERENCE, [{0: (1, 2), 1: (4, 5, 6)}], "x", no_margin)
    assert check.state == DIVERGED and check.mismatch.got is None


def test_checks_round_trip_and_the_worst_decides():
    near = Exactness(NEAR_TIE, 2, "x", Mismatch(0, 3, 7, 8, 0.01))
    diverged = Exactness(DIVERGED, 2, "y", Mismatch(1, 0, 7, 8, 3.0))
    assert Exactness.from_dict(near.to_dict()) == near
    assert worst([Exactness(EXACT, 2, "z"), near]) == near
    assert worst([near, diverged]) == diverged
    assert worst([]) is None


def test_a_case_result_records_its_checks_and_fails_only_on_a_divergence():
    near = Exactness(NEAR_TIE, 2, "x", Mismatch(0, 3, 7, 8, 0.0))
    diverged = Exactness(DIVERGED, 2, "y", Mismatch(1, 0, 7, 8, 3.0))
    tied = CaseResult(conditions={"slo": {}}, exactness={"continuous-batching": near})
    assert tied.failure_reason() is None
    assert tied.recorded_conditions() == {"slo": {}, "exactness": {"continuous-batching": near.to_dict()}}
    both = tied + CaseResult(exactness={"prefix-sharing": diverged})
    assert both.failure_reason().startswith("prefix-sharing: ") and "DIVERGED" in both.failure_reason()
    assert CaseResult(conditions={"a": 1}).recorded_conditions() == {"a": 1}
