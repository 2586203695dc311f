"""An accuracy floor decided as non-inferiority: one-sided, at a stated confidence, never "no difference".

Top-1 agreement is the share of the fidelity text's positions where the variant ranks the
reference's first token first; the reference agrees with itself everywhere, so "no worse than the
reference by more than 1 - min" is "agreement >= min". The variant passes only when the one-sided
Clopper-Pearson lower bound of its agreement clears ``min`` ("shown"); it fails when even the upper
bound falls short ("below"); between, it is "not shown" and counts as failing the floor. Positions of
one text are not independent, so the bound is optimistic by their correlation: it says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pytest_inferlab.tune.space import Floor

SHOWN, NOT_SHOWN, BELOW, NO_DATA = "shown", "not shown", "below", "no data"
FLOOR_FILE = "floor.json"  # a trial's floor checks when it stopped before timing (below a floor)


@dataclass(frozen=True, slots=True)
class FloorCheck:
    floor: Floor
    outcome: str  # SHOWN, NOT_SHOWN, BELOW, NO_DATA
    value: float | None
    lower: float | None  # one-sided bound at the floor's confidence
    positions: int | None

    @property
    def passed(self) -> bool:
        return self.outcome == SHOWN

    def words(self) -> str:
        if self.outcome == NO_DATA:
            return f"{self.floor.metric}: no data (the record has no {self.floor.metric}): not shown"
        if self.positions is None:
            return f"{self.floor.metric} {self.value:.3f}: the reference itself ({self.outcome})"
        return (f"{self.floor.metric} {self.value:.3f}, >= {self.lower:.3f} at {self.floor.confidence:.0%} one-sided "
                f"over {self.positions} positions: {self.outcome} (floor {self.floor.minimum:g})")

    @property
    def shortfall(self) -> float:
        """How far the shown bound is below the floor (<= 0: shown): the constraint Optuna is told."""
        if self.lower is None:
            return 1.0
        return self.floor.minimum - self.lower

    @classmethod
    def from_dict(cls, data: dict) -> "FloorCheck":
        """Back from a study's storage, as it was decided (the reference's own check has no positions)."""
        return cls(Floor(data["metric"], data["minimum"], data["confidence"]), data["outcome"], data.get("value"),
                   data.get("lower_bound"), data.get("positions"))

    def to_dict(self) -> dict:
        return {"metric": self.floor.metric, "minimum": self.floor.minimum, "confidence": self.floor.confidence,
                "floor": self.floor.label, "outcome": self.outcome, "value": self.value, "lower_bound": self.lower,
                "positions": self.positions}


def agreement_bounds(agree: int, positions: int, confidence: float) -> tuple[float, float]:
    """One-sided Clopper-Pearson bounds (lower, upper) of a proportion, each at ``confidence``."""
    from scipy import stats

    alpha = 1 - confidence
    lower = 0.0 if agree == 0 else float(stats.beta.ppf(alpha, agree, positions - agree + 1))
    upper = 1.0 if agree == positions else float(stats.beta.ppf(1 - alpha, agree + 1, positions - agree))
    return lower, upper


def check_floor(floor: Floor, value: float | None, positions: int | None) -> FloorCheck:
    """``value`` (agreement) over ``positions`` against ``floor``; the reference itself passes exactly."""
    if value is None or not positions:
        return FloorCheck(floor, NO_DATA, value, None, positions)
    if positions == math.inf:  # the reference against itself: agreement by definition
        return FloorCheck(floor, SHOWN, value, value, None)
    agree = round(value * positions)
    lower, upper = agreement_bounds(agree, positions, floor.confidence)
    outcome = SHOWN if lower >= floor.minimum else BELOW if upper < floor.minimum else NOT_SHOWN
    return FloorCheck(floor, outcome, value, lower, positions)
