"""Records: one JSON document per measured case, versioned, readable back with clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pytest_inferlab.ground.jsonio import is_temp, read_json_object
from pytest_inferlab.measure.exactness import DIVERGED, EXACT, NEAR_TIE, Exactness, Mismatch, worst
from pytest_inferlab.measure.metrics import Measurement
from pytest_inferlab.specs.core import RunSpec

RECORD_SCHEMA_VERSION = 1
NOT_MEASURED = "not measured in this run"  # the reason of an invalid verdict with no value


class RecordError(ValueError):
    """A record file that cannot be used; the message names the file."""


def record_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The record files of a run folder (``recursive``: of every run under ``folder``), sorted;
    temporary files a writer left behind are never records."""
    found = folder.rglob("*.json") if recursive else folder.glob("*.json")
    return sorted(path for path in found if not is_temp(path))


@dataclass(frozen=True, slots=True)
class Record:
    """One case: what was measured (``measurements``; ``absent`` says why a metric is missing), what
    produced it (``spec`` and its ``spec_id``, ``engine``, ``environment`` and ``machine_id``), how
    (``rounds``, ``conditions``) and, once judged, its ``verdicts`` against ``baseline``. Written as one
    JSON file in the run folder (atomically, never overwritten); ``record["tpot_ms"]`` reads a value."""

    run_id: str
    test_id: str
    params: dict[str, Any]
    spec: dict[str, Any]
    spec_id: str
    measurements: Mapping[str, Measurement]
    absent: dict[str, str]
    engine: dict[str, Any]
    environment: dict[str, Any]
    machine_id: str
    seed: int
    started_at: str
    finished_at: str
    rounds: int
    warmup_rounds: int
    conditions: dict[str, Any] = field(default_factory=dict)  # e.g. xdist worker, benchmark disabled
    output_digest: str | None = None  # sha256 of the generated ids of the last round: did the output change?
    verdicts: list[dict[str, Any]] = field(default_factory=list)  # one per judged metric, against `baseline`
    baseline: dict[str, Any] | None = None  # which baseline file was compared, and whether it gated
    evals: dict[str, Any] = field(default_factory=dict)  # lm-eval task -> scores and per-item correctness
    curve: list[dict[str, Any]] = field(default_factory=list)  # latency-throughput points (pytest_inferlab.measure.curves)
    round_values: dict[str, list[float]] = field(default_factory=dict)  # metric -> each timed round's value (pairing)
    schema_version: int = RECORD_SCHEMA_VERSION

    def __getitem__(self, metric: str) -> float | None:
        """``record["tpot_ms"]``: a measurement's headline value. A metric the case could not measure
        raises KeyError with the reason it was absent; an unknown one names the measured metrics."""
        if metric in self.measurements:
            return self.measurements[metric].value
        if metric in self.absent:
            raise KeyError(f"{metric} was not measured in {self.test_id}: {self.absent[metric]}")
        raise KeyError(f"{metric} is not a metric of {self.test_id}; measured: {', '.join(sorted(self.measurements))}")

    def value(self, metric: str) -> float | None:
        """A measurement's headline value, None where the case has none (``record[metric]`` says why)."""
        found = self.measurements.get(metric)
        return found.value if found is not None else None

    def __contains__(self, metric: object) -> bool:
        return metric in self.measurements

    @property
    def exactness(self) -> Exactness | None:
        """The least exact of the case's checks of a speed-only claim (drafting, padded/static/continuous
        batching, prefix sharing) against decoding without it: ``record.exactness.lossless`` is True when
        the outputs are equal, or equal up to a near tie (measure/exactness.py); None: nothing was checked."""
        return worst(list(exactness_checks(self.conditions).values()))

    @property
    def model_name(self) -> str:
        """The model as the user named it (``spec.model.name``)."""
        return str((self.spec.get("model") or {}).get("name", "unknown"))

    @property
    def commit(self) -> str | None:
        """The git commit the case was measured at; None outside a checkout."""
        return ((self.environment or {}).get("git") or {}).get("commit")

    @property
    def run_spec(self) -> RunSpec:
        """The spec that produced the case, rebuilt from its stored form (``run_spec.spec_id == spec_id``)."""
        return RunSpec.from_dict(self.spec)

    @classmethod
    def from_json(cls, data: Any, source: str) -> "Record":
        """The record ``to_json`` wrote, typed again; RecordError naming ``source`` where it is not one."""
        data = parse_record(data, source)
        try:
            measurements = {name: Measurement.from_dict(m) for name, m in data["measurements"].items()}
            return cls(
                run_id=data["run_id"], test_id=data["test_id"], params=data.get("params") or {}, spec=data["spec"],
                spec_id=data["spec_id"], measurements=measurements, absent=data.get("absent") or {},
                engine=data.get("engine") or {}, environment=data["environment"], machine_id=data["machine_id"],
                seed=data.get("seed", 0), started_at=data.get("started_at", ""), finished_at=data.get("finished_at", ""),
                rounds=data.get("rounds", 0), warmup_rounds=data.get("warmup_rounds", 0),
                conditions=data.get("conditions") or {}, output_digest=data.get("output_digest"),
                verdicts=data.get("verdicts") or [], baseline=data.get("baseline"), evals=data.get("evals") or {},
                curve=data.get("curve") or [], round_values=data.get("round_values") or {},
                schema_version=data["schema_version"])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"{source}: a field does not read as a record's ({type(exc).__name__}: {exc})") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version, "run_id": self.run_id, "test_id": self.test_id,
            "params": self.params, "spec_id": self.spec_id, "spec": self.spec,
            "measurements": {name: m.to_dict() for name, m in sorted(self.measurements.items())},
            "absent": dict(sorted(self.absent.items())), "engine": self.engine, "environment": self.environment,
            "machine_id": self.machine_id, "seed": self.seed, "started_at": self.started_at,
            "finished_at": self.finished_at, "rounds": self.rounds, "warmup_rounds": self.warmup_rounds,
            "conditions": self.conditions, "output_digest": self.output_digest,
            "verdicts": self.verdicts, "baseline": self.baseline, "evals": self.evals,
            "curve": self.curve, "round_values": self.round_values,
        }


def exactness_checks(conditions: Mapping[str, Any]) -> dict[str, Exactness]:
    """A record's exactness checks by claim (``conditions.exactness``); a record written before those
    existed has its drafting check in ``conditions.speculative`` (exact, first_mismatch.near_tie)."""
    if conditions.get("exactness"):
        return {claim: Exactness.from_dict(check) for claim, check in conditions["exactness"].items()}
    drafting = conditions.get("speculative") or {}
    if drafting.get("exact") is None:
        return {}
    mismatch = drafting.get("first_mismatch") or {}
    state = EXACT if drafting["exact"] else NEAR_TIE if mismatch.get("near_tie") else DIVERGED
    found = Mismatch(mismatch["request"], mismatch["position"], mismatch.get("target"), mismatch.get("speculative"),
                     mismatch.get("tie_margin_nats")) if mismatch else None
    return {"drafting": Exactness(state, int(drafting.get("checked_requests") or 0), "the target without drafting", found)}


REQUIRED = ("run_id", "test_id", "spec_id", "spec", "measurements", "environment", "machine_id")


def parse_record(data: Any, source: str) -> dict[str, Any]:
    """Validate a record's JSON; raise RecordError naming ``source`` and what is wrong."""
    if not isinstance(data, dict):
        raise RecordError(f"{source}: not a record (expected a JSON object)")
    version = data.get("schema_version")
    if version != RECORD_SCHEMA_VERSION:
        raise RecordError(
            f"{source}: schema_version {version!r} is not supported (this pytest-inferlab reads {RECORD_SCHEMA_VERSION}); "
            "upgrade pytest-inferlab or re-run the suite"
        )
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise RecordError(f"{source}: missing field(s) {', '.join(missing)}")
    return data


def load_record(path: Path) -> dict[str, Any]:
    """A record file's JSON form, validated: the stored form, as a tool reading the files sees it (the
    package itself reads records typed, ``read_record``)."""
    return parse_record(read_json_object(path, RecordError, "record"), str(path))


def read_record(path: Path) -> Record:
    """A record file as the typed Record the lab wrote; RecordError naming the file where it is not one."""
    return Record.from_json(read_json_object(path, RecordError, "record"), str(path))
