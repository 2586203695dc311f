"""One Pareto front for every trade-off (judge/front.py)."""

from pytest_inferlab.judge.front import Objective, dominates, pareto_front

FAST, SMALL = Objective(lambda p: p[0]), Objective(lambda p: p[1], maximize=False)


def test_the_front_keeps_what_nothing_beats_on_every_axis():
    points = [(10, 5), (8, 2), (10, 6), (7, 3), (8, 2)]  # (speed, bytes)
    # (10, 6) is beaten by (10, 5); (7, 3) by (8, 2); equal points both stay
    assert pareto_front(points, [FAST, SMALL]) == [(10, 5), (8, 2), (8, 2)]
    assert dominates((10, 5), (10, 6), [FAST, SMALL]) and not dominates((8, 2), (8, 2), [FAST, SMALL])
    assert not dominates((10, 5), (8, 2), [FAST, SMALL]) and not dominates((8, 2), (10, 5), [FAST, SMALL])
    assert pareto_front(points, [FAST]) == [(10, 5), (10, 6)] and pareto_front([], [FAST]) == []


def test_the_quantization_trade_off_and_the_findings_use_it():
    from pytest_inferlab.outputs import decisions, pareto

    assert pareto.front_of is pareto_front and decisions.front_of is pareto_front
