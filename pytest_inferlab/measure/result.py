"""What a case measured, one type from its rounds to its record.

A case's rounds, each feature's enricher (measure/enrichers.py) and the lab's own conditions (the
SLO, how the process was prepared) each contribute a ``CaseResult``; ``+`` adds them up, and the
recorder writes the sum. One type, so a field added here reaches the record from every kind of case
(latency, sweep, overhead) without being copied field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_inferlab.measure.exactness import Exactness
from pytest_inferlab.measure.metrics import Measurement


@dataclass(frozen=True, slots=True)
class CaseResult:
    """Measurements, the reasons for the ones absent, conditions and notes of one case (or a part of it)."""

    measurements: dict[str, Measurement] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)  # metric -> why it was not measured
    conditions: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # the case's line in the summary table
    output_digest: str | None = None  # the last round's outputs (record.output_digest)
    evals: dict[str, Any] = field(default_factory=dict)  # lm-eval task -> its results
    curve: tuple[dict[str, Any], ...] = ()  # the points of a rate sweep or a load curve
    failure: str | None = None  # the case fails after its record is written
    round_values: dict[str, list[float]] = field(default_factory=dict)  # metric -> each timed round's value
    exactness: dict[str, Exactness] = field(default_factory=dict)  # claim -> its check (a divergence fails the case)

    def __add__(self, other: CaseResult) -> CaseResult:
        """Both parts: mappings merged (``other`` wins on a shared key), notes and curve points in order,
        the first failure and the first output digest kept."""
        return CaseResult({**self.measurements, **other.measurements}, {**self.absent, **other.absent},
                          {**self.conditions, **other.conditions}, self.notes + other.notes,
                          self.output_digest or other.output_digest, {**self.evals, **other.evals},
                          self.curve + other.curve, self.failure or other.failure,
                          {**self.round_values, **other.round_values}, {**self.exactness, **other.exactness})

    @property
    def note(self) -> str:
        return " ".join(self.notes)

    def exactness_failure(self) -> str | None:
        """Why the case fails for a claim its outputs broke, or None (near ties never fail)."""
        broken = [f"{claim}: {check.describe()}" for claim, check in self.exactness.items() if not check.lossless]
        return "; ".join(broken) or None

    def failure_reason(self) -> str | None:
        """Why the case fails once recorded: a failure set by a part, else a lossless claim broken."""
        return self.failure or self.exactness_failure()

    def recorded_conditions(self) -> dict[str, Any]:
        """The conditions as the record keeps them, the exactness checks among them."""
        if not self.exactness:
            return dict(self.conditions)
        return {**self.conditions, "exactness": {claim: check.to_dict() for claim, check in self.exactness.items()}}
