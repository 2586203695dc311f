"""A test's settings, read once: its ``@pytest.mark.inferlab(...)`` marker over the run's options.

Every marker keyword is checked here (an unknown one is a usage error naming the test), so the
kinds of case read plain values and never the marker itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import pytest

from pytest_inferlab.judge.sequential import StoppingRule
from pytest_inferlab.plugin.options import AUTO, Settings
from pytest_inferlab.specs.slo import SLO

MARKER = "inferlab"
MARKER_KEYWORDS = ("rounds", "warmup", "tolerance", "slo", "precision", "max_rounds")


@dataclass(frozen=True, slots=True)
class SloChoice:
    """The SLO a case judges goodput by, where it came from, and what it overrode (said, never silent)."""

    slo: SLO
    source: str  # "measure(slo=...)", "@pytest.mark.inferlab(slo=...)", "--inferlab-slo" or "none"
    overridden: str | None = None  # the other source that was given and lost, for the warning

    def to_dict(self) -> dict[str, Any]:
        return {"bounds": self.slo.to_dict(), "source": self.source, "overridden": self.overridden}


@dataclass(frozen=True, slots=True)
class CaseSettings:
    """Rounds, warm-up, tolerances and SLO of one test, with the test's id and name for messages.
    A setting given on the command line beats the test's marker, which beats the ini file and the
    default (the command line is what the person running the suite asked for, e.g. ``inferlab ab``'s
    16 pairs)."""

    nodeid: str
    name: str
    rounds: int | None  # a fixed count; None: adaptive (``rule`` says when to stop)
    rule: StoppingRule
    warmup: int
    tolerance: Mapping[str, Any]
    marker_slo: SLO | None
    option_slo: SLO | None
    seed: int

    @classmethod
    def read(cls, node: pytest.Item, settings: Settings) -> "CaseSettings":
        marker = node.get_closest_marker(MARKER)
        given: dict[str, Any] = dict(marker.kwargs) if marker else {}
        where = f"{node.nodeid}: @pytest.mark.{MARKER}"
        unknown = sorted(set(given) - set(MARKER_KEYWORDS))
        if unknown or (marker and marker.args):
            raise pytest.UsageError(f"{where}: unknown setting(s) {unknown or list(marker.args)}; "
                                    f"known: {', '.join(MARKER_KEYWORDS)}")

        def setting(name: str) -> Any:
            return getattr(settings, name) if name in settings.explicit else given.get(name, getattr(settings, name))

        rounds = setting("rounds")
        try:
            rule = StoppingRule(precision=setting("precision"), max_seconds=settings.round_budget,
                                max_rounds=_count(where, "max_rounds", setting("max_rounds"), 3))
        except (TypeError, ValueError) as exc:
            raise pytest.UsageError(f"{where}: {exc}") from None
        return cls(nodeid=node.nodeid, name=node.name,
                   rounds=None if rounds == AUTO else _count(where, "rounds", rounds, 1), rule=rule,
                   warmup=_count(where, "warmup", setting("warmup"), 0),
                   tolerance=_mapping(where, "tolerance", given.get("tolerance", {}), "{'tpot_ms': 0.05}"),
                   marker_slo=_slo(where, given["slo"]) if "slo" in given else None,
                   option_slo=settings.slo, seed=settings.seed)

    def slo(self, explicit: SLO | None) -> SloChoice:
        """``measure(slo=...)`` beats the marker's ``slo``, which beats --inferlab-slo; a loser that
        was given is named in ``overridden`` (the lab warns)."""
        given = [(source, slo) for source, slo in (("measure(slo=...)", explicit),
                                                   (f"@pytest.mark.{MARKER}(slo=...)", self.marker_slo),
                                                   ("--inferlab-slo", self.option_slo)) if slo is not None]
        if not given:
            return SloChoice(SLO(), "none")
        (source, slo), rest = given[0], given[1:]
        lost = next((other for other, value in rest if value != slo and other != "--inferlab-slo"), None)
        return SloChoice(slo, source, lost)


def _count(where: str, name: str, value: Any, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise pytest.UsageError(f"{where}({name}={value!r}) must be an integer >= {minimum}")
    return value


def _mapping(where: str, name: str, value: Any, example: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise pytest.UsageError(f"{where}({name}=...) must be a dict such as {example}")
    return value


def _slo(where: str, bounds: Any) -> SLO:
    _mapping(where, "slo", bounds, "{'ttft_ms': 2000, 'tpot_ms': 150}")
    try:
        return SLO.from_mapping(bounds, f"{where}(slo=...)")
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
