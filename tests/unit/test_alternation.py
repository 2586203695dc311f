"""Every paired measurement runs its pairs A B, B A, A B... (ground/alternation.py)."""

from pytest_inferlab.ground.alternation import pair_order
from pytest_inferlab.run.lockstep import Turn, choose


def test_neither_side_always_runs_first():
    order = [side for index in range(4) for side in pair_order(index, "b", "c")]
    assert order == ["b", "c", "c", "b", "b", "c", "c", "b"]


def test_the_ab_coordinator_alternates_who_leads_a_round():
    assert [choose(Turn(0, 1, i), Turn(0, 1, i)) for i in range(4)] == ["base", "candidate", "base", "candidate"]
