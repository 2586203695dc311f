"""How one model is split over devices: tensor- and pipeline-parallel degrees.

A layout is written ``tp2``, ``pp2`` or ``tp2-pp2``: each part is an axis of the ``layout_axes``
registry (``tp`` -> tensor, ``pp`` -> pipeline) followed by its degree.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pytest_inferlab.registry import Registry

@dataclass(frozen=True, slots=True)
class LayoutAxis:
    """One axis of a layout: its prefix in ``tp2-pp2`` and the ParallelSpec field it sets."""

    prefix: str
    field: str


layout_axes: Registry[LayoutAxis] = Registry("parallel layout axes")
for _axis in (LayoutAxis("tp", "tensor"), LayoutAxis("pp", "pipeline")):
    layout_axes.register(_axis.prefix, _axis)


@dataclass(frozen=True, slots=True)
class ParallelSpec:
    """How one model is split: tensor-parallel and pipeline-parallel degrees; ``ray_address`` runs
    vLLM's Ray executor across machines."""

    tensor: int = 1
    pipeline: int = 1
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.tensor < 1 or self.pipeline < 1:
            raise ValueError(f"parallel layout tp={self.tensor} pp={self.pipeline}: degrees must be >= 1")

    @property
    def devices(self) -> int:
        return self.tensor * self.pipeline

    @classmethod
    def parse(cls, text: str) -> "ParallelSpec":
        """``"tp2"``, ``"pp2"``, ``"tp2-pp2"`` -> ParallelSpec; a bad layout names the forms."""
        degrees: dict[str, int] = {}
        for part in str(text).split("-"):
            prefix, degree = part[:2], part[2:]
            if prefix not in layout_axes or not degree.isdigit() or layout_axes.get(prefix).field in degrees:
                raise ValueError(f"parallel layout {text!r}: expected tpN, ppN or tpN-ppN (e.g. tp2-pp2); "
                                 f"axes: {', '.join(layout_axes.names())}")
            degrees[layout_axes.get(prefix).field] = int(degree)
        return cls(**degrees)

    @property
    def label(self) -> str:
        return "-".join(part for part in (f"tp{self.tensor}" if self.tensor > 1 or self.pipeline == 1 else "",
                                          f"pp{self.pipeline}" if self.pipeline > 1 else "") if part)

    def with_ray(self, address: str | None) -> "ParallelSpec":
        """The layout spread over the Ray cluster at ``address`` unless it names one already."""
        return dataclasses.replace(self, ray_address=self.ray_address or address)
