"""The last step of every case: record, judge, confirm, write, report, and fail where it must.

A record is written whatever its verdicts (even when the baseline is unreadable), before the case
fails, so nothing measured is lost.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from pytest_inferlab.engines.base import Engine
from pytest_inferlab.judge.gate import Gate, Judgement, Remeasure
from pytest_inferlab.measure.enrichers import weights
from pytest_inferlab.measure.metrics import summary_values
from pytest_inferlab.measure.result import CaseResult
from pytest_inferlab.outputs.report import report_row, verdict_rows, verdict_section
from pytest_inferlab.plugin.case_settings import CaseSettings
from pytest_inferlab.record.record import Record
from pytest_inferlab.specs.core import RunSpec, spec_dict

REPORT_KEY = "inferlab"  # key of the report row in item.user_properties (travels through xdist)
VERDICT_KEY = "inferlab-verdicts"


class InferlabWarning(pytest.PytestWarning):
    """Results that are reported but cannot gate (e.g. a baseline of another machine)."""


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """What every record of the run shares."""

    run_id: str
    machine_id: str
    environment: dict[str, Any]


def param_value(value: Any) -> Any:
    """A test parameter as a record keeps it: plain values as they are, specs by name."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return getattr(value, "name", None) or repr(value)  # any object a user parametrizes with


def rounds_used(conditions: dict[str, Any], fixed: int | None) -> int | None:
    """The timed rounds a case ran: its fixed count, or as many as its adaptive rounds used."""
    rounds = conditions.get("rounds") or {}
    return rounds.get("used") if rounds.get("mode") == "adaptive" else rounds.get("rounds", fixed)


class Recorder:
    """Records one test's case: ``node`` and ``benchmark`` are the test's, ``write`` the run's store."""

    def __init__(self, node: pytest.Item, benchmark: Any, case: CaseSettings, gate: Gate,
                 identity: Callable[[], RunIdentity], write: Callable[[Record], Path],
                 say: Callable[[str], None]) -> None:
        self.node, self.benchmark, self.case, self.gate = node, benchmark, case, gate
        self.identity, self.write, self.say = identity, write, say

    def finish(self, spec: RunSpec, engine: Engine, found: CaseResult, started: str,
               remeasure: Remeasure | None = None) -> Record:
        found = found + weights(engine, found.measurements)
        record = self._record(spec, engine, found, started)
        judgement = self.gate.judge(record, self.case.tolerance)
        if remeasure is not None and judgement.regressed:
            judgement, confirmations = self.gate.confirm(record, judgement, self.case.tolerance, remeasure,
                                                         lambda text: self.say(f"{self.case.name}: {text}"))
            record = dataclasses.replace(record, conditions={**record.conditions, "confirmations": confirmations})
        self.gate.note(judgement)  # the run's evidence about its host, for the cases after this one
        record = dataclasses.replace(record, verdicts=[dataclasses.asdict(v) for v in judgement.verdicts],
                                     baseline=judgement.baseline,
                                     conditions={**record.conditions, "invalid": judgement.invalid})
        path = self.write(record)  # kept whatever the verdict, even when the baseline is unreadable
        self._report(record, engine, path, judgement, found.note)
        failure = found.failure_reason()
        if failure:
            pytest.fail(f"{failure} (record: {path})", pytrace=False)
        return record

    def _record(self, spec: RunSpec, engine: Engine, found: CaseResult, started: str) -> Record:
        callspec = getattr(self.node, "callspec", None)  # pytest sets it on parametrized items only
        params = {k: param_value(v) for k, v in (callspec.params.items() if callspec else ())}
        run = self.identity()
        return Record(
            run_id=run.run_id, test_id=self.node.nodeid, params=params, spec=spec_dict(spec), spec_id=spec.spec_id,
            measurements=found.measurements, absent=found.absent,
            engine={**dataclasses.asdict(engine.info), "model_spec_id": engine.info.model.spec_id},
            environment=run.environment, machine_id=run.machine_id, seed=spec.sampling.seed, started_at=started,
            finished_at=now(), rounds=rounds_used(found.conditions, self.case.rounds),
            warmup_rounds=self.case.warmup, conditions=found.recorded_conditions(),
            output_digest=found.output_digest, evals=found.evals, curve=list(found.curve),
            round_values=found.round_values,
        )

    def _report(self, record: Record, engine: Engine, path: Path, judgement: Judgement, note: str) -> None:
        values = summary_values(record.measurements)
        self.benchmark.extra_info["inferlab"] = {"spec_id": record.spec_id, "record": str(path), "metrics": values}
        case = self.node.nodeid.split("::")[-1]
        self.node.user_properties.append((REPORT_KEY, report_row(case, engine.info.model.name, values, note)))
        self.node.user_properties.append((VERDICT_KEY, verdict_rows(case, judgement.verdicts, judgement.gating)))
        section = verdict_section(judgement.verdicts, judgement.baseline, judgement.warning)
        self.node.add_report_section("call", "inferlab verdicts", section)
        if judgement.warning:
            warnings.warn(InferlabWarning(f"{self.node.nodeid}: {judgement.warning}"), stacklevel=3)
        if judgement.error:
            pytest.fail(f"{judgement.error} (this case's record is kept: {path})", pytrace=False)
        if judgement.regressed:
            pytest.fail(f"performance regression in {', '.join(judgement.regressed)} (record: {path})\n{section}",
                        pytrace=False)
