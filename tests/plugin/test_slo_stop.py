"""A case stops as soon as its own rounds clearly violate an SLO bound (lab.measure(bounds=...)), the
early stop ``inferlab tune`` gives a trial; a bound it meets changes nothing."""

ARGS = ("--inferlab-model=dummy:tiny", "--inferlab-threads=1", "--inferlab-precision=0.0001", "-p", "no:cacheprovider")

SUITE = """
import pytest
from pytest_inferlab.specs import Bound

@pytest.fixture
def workload_overrides():
    return {"count": 1, "output_tokens": 6}

def test_violated(lab, model, workload):
    record = lab.measure(model, workload, bounds=[Bound("tpot_ms", "p50", 0.001)])
    rounds = record.conditions["rounds"]
    assert rounds["used"] == 3, rounds  # the first look: an interval needs three rounds
    assert "clearly violates tpot_ms p50 <= 0.001" in rounds["stopped"], rounds

@pytest.mark.inferlab(max_rounds=4)
def test_met(lab, model, workload):
    record = lab.measure(model, workload, bounds=[Bound("tpot_ms", "p50", 1e6)])
    rounds = record.conditions["rounds"]
    assert rounds["used"] == 4 and "violates" not in rounds["stopped"], rounds  # precision 0.01%: it goes on
"""


def test_a_case_stops_once_its_rounds_clearly_violate_a_bound(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess(*ARGS)
    result.assert_outcomes(passed=2)
