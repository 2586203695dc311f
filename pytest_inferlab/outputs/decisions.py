"""The decisions a run's findings support: the pick (the fastest quantization that stays faithful)
and the speed x memory x fidelity front (judge/front.py's one definition of a Pareto front)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pytest_inferlab.judge.front import Objective
from pytest_inferlab.judge.front import pareto_front as front_of
from pytest_inferlab.outputs.families import LATENCY, QUANT
from pytest_inferlab.outputs.findings import Finding

PICK_AGREEMENT = 0.9  # the least top-1 / token agreement with the reference a pick may have


def pick(findings: Sequence[Finding]) -> Finding | None:
    """The fastest quantized variant (paired speed, not failed) that keeps at least PICK_AGREEMENT of
    the reference's top-1 predictions: what a user of this model on this machine should try first."""
    fit = [f for f in findings if f.family == QUANT and f.speed is not None and f.speed.paired and not f.failed
           and f.agreement is not None and f.agreement >= PICK_AGREEMENT]
    return max(fit, key=lambda f: f.speed.ratio, default=None)


def pick_words(findings: Sequence[Finding]) -> str | None:
    """The pick in one sentence (None when no quantized variant qualifies)."""
    best = pick(findings)
    if best is None:
        return None
    low, high = best.speed.interval
    return (f"{best.optimization}, {best.speed.ratio:.2f}x the tokens/s of {best.speed.against} (95% {low:.2f}-"
            f"{high:.2f}), {best.memory or 'memory not measured'}, {best.fidelity}: the fastest quantization "
            f"keeping at least {PICK_AGREEMENT:.0%} top-1 agreement with the reference on this machine")




@dataclass(frozen=True, slots=True)
class FrontPoint:
    """A finding on the speed x memory x fidelity plane (every axis a multiple of its reference's)."""

    finding: Finding
    speed: float
    memory: float
    agreement: float


def front_points(findings: Sequence[Finding]) -> tuple[list[FrontPoint], list[Finding]]:
    """(points with all three axes known, findings left out). The plain model is the point (1, 1, 1)."""
    points, left_out = [], []
    for f in findings:
        if f.family == LATENCY:
            points.append(FrontPoint(f, 1.0, 1.0, 1.0))
        elif f.speed is not None and f.memory_ratio is not None and f.agreement is not None and not f.failed:
            points.append(FrontPoint(f, f.speed.ratio, f.memory_ratio, f.agreement))
        else:
            left_out.append(f)
    return points, left_out


# faster, smaller, more faithful than the plain model (judge/front.py)
FRONT_OBJECTIVES: tuple[Objective[FrontPoint], ...] = (
    Objective(lambda p: p.speed), Objective(lambda p: p.memory, maximize=False), Objective(lambda p: p.agreement))


def pareto_front(points: Sequence[FrontPoint]) -> list[FrontPoint]:
    """Points no other point beats on every axis: at least as fast, as small and as faithful, and
    strictly better on one."""
    return front_of(points, FRONT_OBJECTIVES)
