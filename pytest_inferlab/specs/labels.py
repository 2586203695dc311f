"""Readable labels of specs, for test ids and tables."""

from __future__ import annotations

from pytest_inferlab.specs.core import ModelSpec, NamedSettings, WorkloadSpec
from pytest_inferlab.specs.load import LoadSpec
from pytest_inferlab.specs.parallel import ParallelSpec
from pytest_inferlab.specs.slo import SLO


def spec_label(value: object) -> str | None:
    """The label of a spec (None for anything else, which pytest names itself)."""
    if isinstance(value, NamedSettings):
        return value.label
    if isinstance(value, (LoadSpec, ParallelSpec)):
        return value.label
    if isinstance(value, (ModelSpec, WorkloadSpec)):
        return value.name
    if isinstance(value, SLO):
        return value.label().replace("<=", "-")
    return None
