"""Hand-made records for tests of what reads records back (findings, trade-offs, curves, comparisons):
the typed Record a run folder gives, with only the fields a test cares about set."""

from __future__ import annotations

from typing import Any

from pytest_inferlab.measure.metrics import Measurement
from pytest_inferlab.record.record import RECORD_SCHEMA_VERSION, Record


def make_record(measurements: dict[str, Any] | None = None, **fields: Any) -> Record:
    """A Record of defaults and ``fields``; a measurement given as a number is its headline value,
    one given as a dict is read as a record file holds it."""
    typed = {}
    for name, value in (measurements or {}).items():
        if isinstance(value, Measurement):
            typed[name] = value
        elif isinstance(value, dict):
            typed[name] = Measurement.from_dict({"unit": "x", **value})
        else:
            typed[name] = Measurement("x", value)
    defaults: dict[str, Any] = dict(run_id="r", test_id="t::case", params={}, spec={}, spec_id="a" * 12, absent={},
                                    engine={}, environment={}, machine_id="m", seed=0, started_at="", finished_at="",
                                    rounds=1, warmup_rounds=0)
    return Record(measurements=typed, **{**defaults, **fields})


def from_stored(data: dict[str, Any]) -> Record:
    """A record written by hand in the form a record file holds (schema version defaulted), typed as
    ``read_record`` gives it back."""
    return Record.from_json({"schema_version": RECORD_SCHEMA_VERSION, **data}, f"hand-made record {data.get('test_id')}")
