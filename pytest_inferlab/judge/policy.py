"""How each metric is judged against its baseline: its catalog facts (kind, direction, default
tolerance; measure/catalog.py) with the project's and the test's tolerance overrides.

Overrides per project (ini ``inferlab_tolerance``) and per test
(``@pytest.mark.inferlab(tolerance={...})``); test beats project beats the catalog.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

from pytest_inferlab.measure.catalog import COUNT, DETERMINISTIC, INFO, TIMING, catalog, facts_of
from pytest_inferlab.specs.parsing import parse_assignments


@dataclass(frozen=True, slots=True)
class MetricPolicy:
    name: str
    kind: str
    higher_is_better: bool
    tolerance: float  # relative: 0.05 = a 5% change in the bad direction is still acceptable

    @property
    def noisy(self) -> bool:
        """Timings are re-measured before a regression stands; deterministic values and counts are not."""
        return self.kind not in (DETERMINISTIC, COUNT)


def policy_of(name: str) -> MetricPolicy:
    """The catalog's policy of a metric; metrics it does not judge are ``info``."""
    facts = facts_of(name)
    if facts is None:
        return MetricPolicy(name, INFO, False, 0.0)
    return MetricPolicy(name, facts.kind, facts.higher_is_better, facts.tolerance)


def parse_tolerances(text: str, source: str) -> dict[str, float]:
    """``"tpot_ms=0.03 ttft_ms=0.2"`` (spaces, commas or new lines) -> {metric: tolerance}."""
    pairs = parse_assignments(text, source, "METRIC=TOLERANCE (e.g. tpot_ms=0.05)")
    return {name: _fraction(value, f"{source}: {name}") for name, value in pairs.items()}


def _fraction(value: object, where: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{where}={value!r} is not a number; expected a fraction such as 0.05") from None
    if not 0.0 <= number < 10.0:
        raise ValueError(f"{where}={number}: expected a relative tolerance >= 0 (0.05 = 5%)")
    return number


def policies_for(names: list[str], project: Mapping[str, float], test: Mapping[str, object]) -> dict[str, MetricPolicy]:
    """Policies for ``names``: test overrides beat project overrides beat the catalog. A tolerance
    given for an ``info`` metric makes it judged as a timing."""
    unknown = sorted(name for name in {*project, *test} if facts_of(name) is None)
    if unknown:
        raise ValueError(f"tolerance for unknown metric(s) {unknown}; known: {', '.join(catalog.names())}")
    policies = {}
    for name in names:
        policy = policy_of(name)
        if name in project or name in test:
            value = _fraction(test.get(name, project.get(name)), f"tolerance {name}")
            policy = dataclasses.replace(policy, tolerance=value, kind=TIMING if policy.kind == INFO else policy.kind)
        policies[name] = policy
    return policies
