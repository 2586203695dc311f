"""Service-level objectives: per-request bounds that goodput and SLO attainment are judged by."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from pytest_inferlab.specs.parsing import parse_assignments


@dataclass(frozen=True, slots=True)
class SLO:
    """Per-request service-level objectives; a request meets the SLO when it meets every bound set."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None

    def is_set(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2e_ms))

    def label(self) -> str:
        return " ".join(f"{name}<={value:g}" for name, value in self.to_dict().items()) or "none"

    def to_dict(self) -> dict[str, float]:
        bounds = {"ttft_ms": self.ttft_ms, "tpot_ms": self.tpot_ms, "e2e_ms": self.e2e_ms}
        return {name: value for name, value in bounds.items() if value is not None}

    @classmethod
    def from_mapping(cls, bounds: Mapping[str, object], source: str) -> "SLO":
        """``{"ttft_ms": 2000, "tpot_ms": 150}``; a bad name or value raises naming ``source``."""
        known = ("ttft_ms", "tpot_ms", "e2e_ms")
        values: dict[str, float] = {}
        for name, value in bounds.items():
            if name not in known:
                raise ValueError(f"{source}: no SLO on {name!r}; SLOs bound {', '.join(known)}")
            try:
                values[name] = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ValueError(f"{source}: {name}={value!r} is not a number of milliseconds") from None
            if not values[name] > 0:
                raise ValueError(f"{source}: {name}={value!r} must be > 0 ms")
        return cls(**values)

    @classmethod
    def parse(cls, text: str, source: str) -> "SLO":
        """``"ttft_ms=2000 tpot_ms=150"`` (spaces or commas)."""
        return cls.from_mapping(parse_assignments(text, source, "METRIC=MILLISECONDS (e.g. ttft_ms=2000)"), source)


@dataclass(frozen=True, slots=True)
class Bound:
    """An SLO on a case's own figure: ``statistic`` (p50, p90, p99, mean, value) of the catalog metric
    ``metric`` at most ``limit`` (``inferlab tune``'s [slo] table; adaptive rounds stop a case once a
    bound is clearly exceeded)."""

    metric: str
    statistic: str
    limit: float

    @property
    def label(self) -> str:
        return f"{self.metric} {self.statistic} <= {self.limit:g}"
