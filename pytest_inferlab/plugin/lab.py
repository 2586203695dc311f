"""The recording fixture's object: a thin assembler of one test's case.

``Lab`` reads the test's settings once (``CaseSettings``), builds the kind of case asked for
(``cases.py``), lets every feature's enricher add to it (``measure/enrichers.py``) and hands the
result (``CaseResult``) to the recorder (record, gate, report). It measures one case per test, like
pytest-benchmark's single-use fixture.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Sequence

import pytest

from pytest_inferlab.engines.base import Engine
from pytest_inferlab.judge.policy import policies_for
from pytest_inferlab.measure.enrichers import Case, enrich
from pytest_inferlab.measure.result import CaseResult
from pytest_inferlab.plugin.case_settings import CaseSettings, SloChoice
from pytest_inferlab.plugin.cases import LatencyCase, OverheadCase, SweepCase
from pytest_inferlab.plugin.recorder import InferlabWarning, Recorder, now
from pytest_inferlab.plugin.rounds import RoundDriver, RoundPlan
from pytest_inferlab.measure.speculative_pairs import SpeculativePairs
from pytest_inferlab.record.record import Record
from pytest_inferlab.run.batching import BatchingSpec, resolve_batching
from pytest_inferlab.run.probes.process import process_conditions
from pytest_inferlab.run.reference_pairs import ReferencePairs
from pytest_inferlab.specs.core import RunSpec, SamplingSpec, WorkloadSpec
from pytest_inferlab.specs.load import LoadSpec, parse_load
from pytest_inferlab.specs.slo import SLO, Bound

if TYPE_CHECKING:
    from pytest_inferlab.plugin.session import LabSession


class Lab:
    """Measures one case per test and records it. Obtained through the ``lab`` fixture.

    Example::

        def test_latency(lab, model, workload):
            record = lab.measure(model, workload, batch_size=4)
            assert record["output_tok_per_s"] > 0
    """

    def __init__(self, session: "LabSession", request: pytest.FixtureRequest) -> None:
        self._session = session
        self._request = request
        self._used = False
        self.settings = CaseSettings.read(request.node, session.settings)

    @property
    def rounds(self) -> int | None:
        """Fixed timed rounds (--inferlab-rounds=N beats ``@pytest.mark.inferlab(rounds=N)``), or None:
        adaptive (rounds until the case's interval is precise or decides, judge/sequential.py)."""
        return self.settings.rounds

    @property
    def warmup(self) -> int:
        """Warm-up rounds: ``@pytest.mark.inferlab(warmup=N)``, else --inferlab-warmup."""
        return self.settings.warmup

    def measure(self, engine: Engine, workload: WorkloadSpec, *, batch_size: int = 1,
                sampling: SamplingSpec | None = None, slo: SLO | None = None, evals: Sequence[str] = (),
                batching: BatchingSpec | str | None = None, load: LoadSpec | str | None = None,
                reference: Engine | None = None, reference_batch_size: int | None = None,
                incumbent: float | None = None, bounds: Sequence[Bound] = ()) -> Record:
        """Run ``workload`` on ``engine`` (warm-up, then timed rounds) and write the record.

        ``evals``: lm-eval tasks whose scores (and per-item correctness) join the record.
        ``batching``/``load``: serve the requests through a batching engine (``sequential``,
        ``static``, ``continuous``) as they arrive by an arrival process (``closed:4``,
        ``poisson:2.5``, ...); without them, batches of ``batch_size`` run back to back.
        ``slo``: bounds for goodput; it wins over the marker's ``slo={...}`` (with a warning when
        both are given and differ), which wins over --inferlab-slo.
        ``reference``: an engine to compare with in the same run (e.g. the unoptimized ``model``): its
        rounds alternate with the case's own, and the record carries ``speedup_vs_reference`` with its
        95% interval and every timing metric's paired ratio (``conditions.compared_to``); its batches
        hold ``reference_batch_size`` requests (default: ``batch_size``), so a batch size can itself be
        the optimization measured.
        ``incumbent``: with ``reference``, under adaptive rounds, stop as soon as the interval of
        ``speedup_vs_reference`` lies wholly below this ratio (the best configuration found so far
        against the same reference: ``inferlab tune``), else measure until it is precise (0: never
        early; None: the usual rule, decided once clearly faster or slower than the reference).
        ``bounds``: SLOs on the case's own figures (``Bound("tpot_ms", "p50", 100)``); under adaptive
        rounds, stop as soon as the interval of the rounds' own statistic lies wholly above one (the
        configuration clearly violates it: ``inferlab tune``)."""
        self._claim(engine, batch_size)
        sampling = sampling or SamplingSpec(seed=self.settings.seed)
        batching_spec, load_spec = self._under_load(batching, load, batch_size, workload)
        choice = self._slo(slo)
        spec = RunSpec(engine.info.model, workload, batch_size, sampling, engine.info.device.kind,
                       kv_cache=engine.info.kv_cache, batching=batching_spec, load=load_spec,
                       speculative=engine.info.speculative)
        requests = self._session.references.requests_for(engine, workload)
        paired = SpeculativePairs.for_engine(engine, batch_size, load_spec)
        against = None
        if reference is not None and (reference is not engine or (reference_batch_size or batch_size) != batch_size):
            if reference_batch_size is not None and (not isinstance(reference_batch_size, int) or reference_batch_size < 1):
                raise ValueError(f"reference_batch_size={reference_batch_size!r}: expected an integer >= 1")
            against = ReferencePairs(engine, reference, lambda ref: self._session.references.requests_for(ref, workload),
                                     reference_batch_size or batch_size, load_spec)
        rounds = LatencyCase(engine, requests, batch_size, sampling, choice.slo, self._driver(engine), self._plan(),
                             self._say_live, self._speed_tolerance(),
                             batching_spec, load_spec, self._session.settings.load_budget, paired, against,
                             incumbent, tuple(bounds))
        started = now()
        counters_before = engine.counters()
        process = self._process()
        measured = rounds.run()
        if measured.failed and len(measured.failed) == sum(len(t.requests) for t in measured.timed):
            pytest.fail(f"every request failed; first error: {measured.failed[0].error}", pytrace=False)
        case = Case(engine, workload, batch_size, sampling, requests, measured.timed, self._session.references,
                    load_spec, batching_spec, choice.slo, self._session.settings.slo_attainment, counters_before, paired,
                    tuple(evals))
        found = (measured.result + enrich(case, measured.result.measurements)
                 + CaseResult(conditions={**self._slo_condition(choice), "process": process}))

        def remeasure() -> tuple[dict, dict]:
            again = rounds.run(plain=True).result
            return again.measurements, again.conditions

        return self._recorder().finish(spec, engine, found, started, remeasure)

    def sweep(self, engine: Engine, workload: WorkloadSpec, *, batching: BatchingSpec | str = "static",
              rates: Sequence[float] | None = None, process: str = "poisson", slo: SLO | None = None,
              sampling: SamplingSpec | None = None, budget_s: float | None = None) -> Record:
        """Offered rate up to saturation: the highest rate whose SLO attainment meets the target.

        First a closed loop at the engine's largest batch gives its capacity (req/s); then open-loop
        rounds at ``rates`` (default 0.25-3 x capacity), lowest first, until a rate is not sustained
        (attainment below --inferlab-slo-attainment, the generator off schedule, or the time budget
        cut the round). The whole sweep stops admitting work after ``budget_s`` (default 3 x
        --inferlab-load-budget). One record: ``saturation_req_per_s``, ``capacity_req_per_s`` and the
        points in its ``curve``."""
        self._claim(engine, 1)
        sampling = sampling or SamplingSpec(seed=self.settings.seed)
        batching_spec = resolve_batching(batching)
        choice = self._slo(slo)
        if not choice.slo.is_set():
            raise ValueError("a rate sweep needs SLOs to judge each rate: pass slo=SLO(...), mark the test "
                             "@pytest.mark.inferlab(slo={'ttft_ms': ...}) or set --inferlab-slo")
        spec = RunSpec(engine.info.model, workload, 1, sampling, engine.info.device.kind, measure="sweep",
                       kv_cache=engine.info.kv_cache, batching=batching_spec)
        sweep = SweepCase(engine, self._session.references.requests_for(engine, workload), batching_spec, sampling,
                          choice.slo, self._session.settings.slo_attainment,
                          budget_s or 3 * self._session.settings.load_budget, process, rates, self._say)
        started = now()
        driven = self._driver(engine).drive(sweep.run, RoundPlan.fixed(1, 0))
        found = sweep.result(driven)
        return self._recorder().finish(spec, engine, found, started)

    def measure_overhead(self, engine: Engine, workload: WorkloadSpec, *, sampling: SamplingSpec | None = None) -> Record:
        """Tokens/s through the recording path vs a bare ``model.generate`` loop, interleaved
        (``OverheadCase``): ``harness_overhead_pct`` and ``harness_cost_pct``."""
        self._claim(engine, 1)
        sampling = sampling or SamplingSpec(seed=self.settings.seed)
        spec = RunSpec(engine.info.model, workload, 1, sampling, engine.info.device.kind, measure="overhead")
        overhead = OverheadCase(engine, self._session.references.requests_for(engine, workload), sampling,
                                self._plan(), self._say_live)
        started = now()
        driven = self._driver(engine).drive(overhead.one_pair, overhead.driven_plan())
        return self._recorder().finish(spec, engine, overhead.result(driven, sampling.seed), started)

    # ---- what every kind of case shares -----------------------------------------------
    def _claim(self, engine: Engine, batch_size: int) -> None:
        if not isinstance(engine, Engine):
            raise TypeError(f"lab measures a pytest_inferlab.Engine; {type(engine).__name__} is not one: subclass "
                            "Engine (docs/architecture.md, 'The engine protocol') and implement encode and generate")
        if self._used:
            raise RuntimeError("lab measures one case per test (pytest-benchmark's fixture is single-use): "
                               "parametrize the test instead of measuring twice")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: expected an integer >= 1")
        self._used = True

    def _under_load(self, batching: BatchingSpec | str | None, load: LoadSpec | str | None,
                    batch_size: int, workload: WorkloadSpec) -> tuple[BatchingSpec | None, LoadSpec | None]:
        """(batching, load) of a case; both None for back-to-back batches of ``batch_size``. Sessions and
        traces always run under a load (a later turn waits for its answer; a trace has its times):
        by default static batching, a trace replayed on time, sessions one client at a time."""
        if batching is None and load is None:
            if workload.trace is None and workload.sessions is None:
                return None, None
            load = "trace:1" if workload.trace is not None else "closed:1"
        if batch_size != 1:
            raise ValueError(f"batch_size={batch_size} is for back-to-back batches; under a load, the batching "
                             "engine forms batches: set max_batch in its settings (BatchingSpec.of('static', max_batch=8))")
        return resolve_batching(batching or "static"), parse_load(load or "closed:1", self.settings.seed)

    def _slo(self, explicit: SLO | None) -> SloChoice:
        choice = self.settings.slo(explicit)
        if choice.overridden:
            warnings.warn(InferlabWarning(f"{self.settings.nodeid}: the SLO of {choice.source} ({choice.slo.label()}) "
                                          f"overrides the one of {choice.overridden}"), stacklevel=3)
        return choice

    @staticmethod
    def _slo_condition(choice: SloChoice) -> dict:
        return {"slo": choice.to_dict()} if choice.slo.is_set() else {}

    def _process(self) -> dict:
        session = self._session
        return process_conditions(session.cases_measured, session.fresh_child is not None,
                                  session.references.in_process)

    def _speed_tolerance(self) -> float:
        """The tokens/s tolerance (the test's, the project's, the catalog's): a paired ratio beyond it is decided."""
        return policies_for(["output_tok_per_s"], self._session.settings.tolerance,
                            self.settings.tolerance)["output_tok_per_s"].tolerance

    def _plan(self) -> RoundPlan:
        return RoundPlan(self.settings.warmup, self.settings.rounds, self.settings.rule)

    def _driver(self, engine: Engine) -> RoundDriver:
        shard = self._session.settings.shard
        return RoundDriver(self._request.getfixturevalue("benchmark"), engine.info.device,
                           self._session.settings.host_ref != "none",
                           {"xdist_worker": self._session.worker_id, "shard": shard.label if shard else None},
                           self._session.round_turn(self._request.node.nodeid))

    def _recorder(self) -> Recorder:
        return Recorder(self._request.node, self._request.getfixturevalue("benchmark"), self.settings,
                        self._session.gate, self._session.identity, self._session.write, self._say)

    def _say(self, text: str) -> None:
        self._session.progress(f"{self.settings.name}: {text}")

    def _say_live(self, text: str) -> None:
        self._session.progress(f"{self.settings.name}: {text}", live=True)
