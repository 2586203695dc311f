"""An accuracy floor decided as non-inferiority: one-sided, at a stated confidence, never "no difference".

Each kind of floor has its evidence and its one-sided bound at the floor's confidence; the trial
passes only when that bound clears the floor ("shown"), fails when even the bound on the other side
falls short ("below"), and between is "not shown", which counts as failing:

- ``top1_agreement`` (the share of the fidelity text's positions where the variant ranks the
  reference's first token first; the reference agrees with itself everywhere, so "no worse by more
  than 1 - min" is "agreement >= min"): the Clopper-Pearson lower bound. Positions of one text are
  correlated, so this bound is optimistic by their correlation: it says so.
- ``kld_mean`` (nats; the reference's is 0): mean + t x its batch-means standard error (blocks of
  64 positions, measure/fidelity.py), which counts the neighbours' correlation.
- ``TASK.acc`` (an lm-eval task, item by item, variant and reference on the same items): the paired
  difference in accuracy, (gained - lost) / items, bounded below by the Clopper-Pearson lower bound of
  the items gained minus the upper bound of the items lost, each at half the error (Bonferroni):
  conservative, exact, and honest with no item changed (120 unchanged items bound a loss at 3%).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from pytest_inferlab.tune.space import AGREEMENT, DIVERGENCE, Floor

SHOWN, NOT_SHOWN, BELOW, NO_DATA = "shown", "not shown", "below", "no data"
FLOOR_FILE = "floor.json"  # a trial's floor checks, decided before it is timed (trial_suite.py)


@dataclass(frozen=True, slots=True)
class FloorCheck:
    """One floor decided: ``value`` (agreement, KLD, or the accuracy difference to the reference),
    ``bound`` (its one-sided bound at the floor's confidence, the side that must clear the floor),
    ``samples`` (positions or items behind it; None: by definition, e.g. the reference itself)."""

    floor: Floor
    outcome: str  # SHOWN, NOT_SHOWN, BELOW, NO_DATA
    value: float | None
    bound: float | None
    samples: int | None
    why: str = ""  # NO_DATA or by definition: why

    @property
    def passed(self) -> bool:
        return self.outcome == SHOWN

    def words(self) -> str:
        metric = self.floor.metric
        if self.outcome == NO_DATA:
            return f"{metric}: no data ({self.why or f'the record has no {metric}'}): not shown"
        if self.samples is None:
            return f"{metric} {self.value:.3f}: {self.why or 'the reference itself'} ({self.outcome})"
        if self.floor.kind == AGREEMENT:
            head, unit = f"{metric} {self.value:.3f}, >= {self.bound:.3f}", "positions"
        elif self.floor.kind == DIVERGENCE:
            head, unit = f"{metric} {self.value:.4f} nats, <= {self.bound:.4f}", "positions"
        else:
            head, unit = f"{metric} {self.value:+.3f} against the reference, >= {self.bound:+.3f}", "items"
        return (f"{head} at {self.floor.confidence:.0%} one-sided over {self.samples} {unit}: {self.outcome} "
                f"(floor {self.floor.label})")

    @property
    def score(self) -> float:
        """Higher is closer to the reference (the front's fidelity axis): agreement, -KLD, the accuracy
        difference; no data scores lowest."""
        if self.value is None:
            return -float("inf")
        return -self.value if self.floor.kind == DIVERGENCE else self.value

    @property
    def shortfall(self) -> float:
        """How far the shown bound misses the floor (<= 0: shown): the constraint Optuna is told."""
        if self.bound is None:
            return 0.0 if self.passed else 1.0
        if self.floor.kind == AGREEMENT:
            return self.floor.limit - self.bound
        if self.floor.kind == DIVERGENCE:
            return self.bound - self.floor.limit
        return -self.floor.limit - self.bound

    @classmethod
    def from_dict(cls, data: Mapping) -> "FloorCheck":
        """Back from a study's storage or a trial's floor file, as it was decided (a check stored
        before KLD and task floors names its bound ``lower_bound`` and its samples ``positions``)."""
        return cls(Floor.from_dict(data), data["outcome"], data.get("value"), data.get("bound", data.get("lower_bound")),
                   data.get("samples", data.get("positions")), data.get("why", ""))

    def to_dict(self) -> dict:
        return {**self.floor.to_dict(), "floor": self.floor.label, "outcome": self.outcome, "value": self.value,
                "bound": self.bound, "samples": self.samples, "why": self.why}


def by_definition(floor: Floor, why: str) -> FloorCheck:
    """A floor the configuration meets without measuring: the reference's own weights and items."""
    value = 1.0 if floor.kind == AGREEMENT else 0.0  # full agreement; no divergence; no accuracy lost
    return FloorCheck(floor, SHOWN, value, value, None, why)


def no_data(floor: Floor, why: str) -> FloorCheck:
    return FloorCheck(floor, NO_DATA, None, None, None, why)


def proportion_bounds(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    """One-sided Clopper-Pearson bounds (lower, upper) of a proportion, each at ``confidence``."""
    from scipy import stats

    alpha = 1 - confidence
    lower = 0.0 if successes == 0 else float(stats.beta.ppf(alpha, successes, trials - successes + 1))
    upper = 1.0 if successes == trials else float(stats.beta.ppf(1 - alpha, successes + 1, trials - successes))
    return lower, upper


def _outcome(bound_ok: bool, other_fails: bool) -> str:
    return SHOWN if bound_ok else BELOW if other_fails else NOT_SHOWN


def check_agreement(floor: Floor, value: float | None, positions: int | None) -> FloorCheck:
    """Top-1 ``value`` (agreement) over ``positions`` against an AGREEMENT floor."""
    if value is None or not positions:
        return no_data(floor, "no top-1 agreement was measured")
    lower, upper = proportion_bounds(round(value * positions), positions, floor.confidence)
    return FloorCheck(floor, _outcome(lower >= floor.limit, upper < floor.limit), value, lower, positions)


def check_divergence(floor: Floor, value: float | None, standard_error: float | None, positions: int | None,
                     block: int) -> FloorCheck:
    """Mean KLD ``value`` with its batch-means ``standard_error`` (blocks of ``block`` positions)."""
    if value is None or standard_error is None or not positions or positions // block < 2:
        return no_data(floor, "no mean KLD with its standard error was measured")
    from pytest_inferlab.judge.sequential import t_quantile

    spread = t_quantile(floor.confidence, positions // block - 1) * standard_error
    upper, lower = value + spread, max(0.0, value - spread)
    return FloorCheck(floor, _outcome(upper <= floor.limit, lower > floor.limit), value, upper, positions)


def check_task(floor: Floor, variant: Sequence[bool] | None, reference: Sequence[bool] | None) -> FloorCheck:
    """A task's per-item correctness of the variant against the reference's, on the same items."""
    if variant is None or reference is None:
        return no_data(floor, f"lm-eval task {floor.task} gave no per-item correctness")
    if len(variant) != len(reference) or not variant:
        return no_data(floor, f"lm-eval task {floor.task}: {len(variant)} items for the variant, "
                              f"{len(reference)} for the reference")
    items = len(variant)
    gained = sum(v and not r for v, r in zip(variant, reference))
    lost = sum(r and not v for v, r in zip(variant, reference))
    half = 1 - (1 - floor.confidence) / 2  # each side at half the error: together at the confidence
    gained_low, gained_high = proportion_bounds(gained, items, half)
    lost_low, lost_high = proportion_bounds(lost, items, half)
    lower, upper = gained_low - lost_high, gained_high - lost_low
    return FloorCheck(floor, _outcome(lower >= -floor.limit, upper < -floor.limit), (gained - lost) / items, lower,
                      items)


def reference_checks(floors: Sequence[Floor]) -> tuple[FloorCheck, ...]:
    return tuple(by_definition(floor, "the reference itself") for floor in floors)

