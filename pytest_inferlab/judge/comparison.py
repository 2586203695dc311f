"""What comparing two sets of records gives, case by case: the one result type of ``inferlab
compare`` (run A against run B) and of an A/B run (base against candidate)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pytest_inferlab.judge.verdict import REGRESSED, Verdict


@dataclass(frozen=True, slots=True)
class CaseComparison:
    """One case both sides measured: the second side's verdicts against the first's."""

    test_id: str
    spec_id: str
    verdicts: list[Verdict]


@dataclass(frozen=True, slots=True)
class Comparison:
    """The second side judged against the first: A and B of ``inferlab compare``, or base and candidate."""

    paired: bool  # timing judged on paired rounds (lock-step sides of one A/B)
    cases: list[CaseComparison]
    only_first: list[str]  # cases one side measured and the other did not: listed, never judged
    only_second: list[str]
    alpha: float  # per timing series

    @property
    def regressed(self) -> list[tuple[str, str]]:
        return [(c.test_id, v.metric) for c in self.cases for v in c.verdicts if v.outcome == REGRESSED]

    def to_json(self) -> dict[str, Any]:
        """``inferlab compare --json``'s form (A and B)."""
        return {"paired": self.paired, "alpha_per_series": self.alpha, "only_a": self.only_first,
                "only_b": self.only_second,
                "cases": [{"test_id": c.test_id, "spec_id": c.spec_id, "verdicts": [asdict(v) for v in c.verdicts]}
                          for c in self.cases]}

    def ab_json(self) -> dict[str, Any]:
        """An A/B run's ``verdicts.json`` form (base and candidate)."""
        return {"alpha_per_series": self.alpha, "base_only": self.only_first, "candidate_only": self.only_second,
                "cases": [{"test_id": c.test_id, "verdicts": [asdict(v) for v in c.verdicts]} for c in self.cases]}
