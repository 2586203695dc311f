"""The parts the lab and the session assemble, each on its own: case settings, the gate, the
enrichers, the reference cache, the engine protocol's defaults, the registries and parsers."""

import dataclasses
from types import SimpleNamespace

import pytest
from handmade_records import from_stored

from pytest_inferlab.device import CPU
from pytest_inferlab.engines.base import Engine, EngineCapabilityError, EngineInfo
from pytest_inferlab.judge.gate import Gate, GateSettings, Judgement, merge
from pytest_inferlab.judge.policy import policy_of
from pytest_inferlab.judge.verdict import Verdict
from pytest_inferlab.measure.catalog import DETERMINISTIC, TIMING, facts_of, unit_of
from pytest_inferlab.measure.metrics import Measurement
from pytest_inferlab.record.record import Record
from pytest_inferlab.measure.enrichers import Case, engine_counters, enrich, parallel_ranks, weights
from pytest_inferlab.measure.result import CaseResult
from pytest_inferlab.measure.references import ReferenceCache
from pytest_inferlab.plugin.case_settings import CaseSettings
from pytest_inferlab.record.baselines import BaselineStore
from pytest_inferlab.ground.trace import RequestTrace
from pytest_inferlab.specs import SLO, ModelSpec, ParallelSpec, SamplingSpec, WorkloadSpec
from pytest_inferlab.specs.parsing import parse_assignments
from pytest_inferlab.optimizations.quant import quant_methods, resolve_quant
from pytest_inferlab.registry import UnknownNameError

SPEC = ModelSpec("dummy:tiny", "dummy", "tiny")
INFO = EngineInfo("fake", SPEC, CPU, "float32", 10, 40, 100)


class FakeEngine(Engine):
    """Only the required members: every optional capability keeps the protocol's default."""

    def __init__(self, info=INFO):
        self.info = info
        self.generated = 0

    def encode(self, text, chat):
        return [len(word) for word in text.split()]

    def generate(self, batch, sampling):
        self.generated += 1
        return [RequestTrace(r.index, 0.0, (0.1,), (1,), len(r.prompt_ids), (1,)) for r in batch]


class CountingEngine(FakeEngine):
    counters_key = "server"

    def __init__(self):
        super().__init__()
        self.total = {"tokens_from_usage": 3, "timeouts": 1}

    def counters(self):
        return dict(self.total)

    def rank_peaks(self):
        return [100, 120]


# ---- the engine protocol ----------------------------------------------------------------------
def test_an_engine_without_optional_capabilities_says_what_it_lacks():
    engine = FakeEngine()
    assert engine.module is None and engine.last_kv is None and engine.counters() == {} and engine.rank_peaks() == []
    assert engine.counters_key is None
    with pytest.raises(EngineCapabilityError, match="fake engines batch in process: use static or continuous"):
        engine.load_target()
    with pytest.raises(EngineCapabilityError, match="lm-eval needs an in-process model; the fake engine has none"):
        engine.in_process_module("lm-eval")
    with pytest.raises(EngineCapabilityError, match="cache configuration at load"):
        engine.with_kv_cache(None, None)
    engine.close()  # nothing to release, and it says so by doing nothing


def test_an_engine_missing_a_required_member_cannot_be_built():
    class NoGenerate(Engine):
        def encode(self, text, chat):
            return []

    with pytest.raises(TypeError, match="generate"):
        NoGenerate()


class LoadableEngine(FakeEngine):
    """An engine added as a project would: one class with the declared constructor, one registration."""

    @classmethod
    def load(cls, spec, device):
        return cls(dataclasses.replace(INFO, engine="loadable", model=spec, device=device))


def test_an_engine_is_one_module_and_one_registration_and_a_round_runs_through_it(monkeypatch):
    from pytest_inferlab.engines.base import engines, load_engine
    from pytest_inferlab.ground.trace import Request
    from pytest_inferlab.measure.metrics import measure
    from pytest_inferlab.run.runner import run_round

    monkeypatch.setitem(engines._items, "loadable", LoadableEngine)
    engine = load_engine("loadable", SPEC, CPU)
    assert isinstance(engine, LoadableEngine) and engine.info.engine == "loadable" and engine.info.model == SPEC
    trace = run_round(engine, [Request(i, tuple(engine.encode("two words", True)), 1) for i in range(3)], 1,
                      SamplingSpec())
    measured = measure([trace])[0]
    assert engine.generated == 3 and sum(r.output_tokens for r in trace.requests) == 3
    assert measured["output_tok_per_s"].value > 0 and measured["failed_requests"].value == 0
    with pytest.raises(EngineCapabilityError, match="FakeEngine engine is not built from a model spec alone"):
        FakeEngine.load(SPEC, CPU)  # the base's constructor says where such an engine comes from


class ClosingEngine(FakeEngine):
    def __init__(self, info=INFO):
        super().__init__(info)
        self.closed = 0

    def close(self):
        self.closed += 1


def test_the_factory_builds_vllm_engines_once_per_layout_and_closes_every_engine_it_built(monkeypatch):
    """vLLM cannot run here: its engine is replaced at its one constructor (VllmEngine.load), the
    factory's side (built once per layout, closed with the factory) is what is tested."""
    from pytest_inferlab.assembly.factory import EngineFactory, EngineSettings, ModelChecks
    from pytest_inferlab.engines.vllm_engine import VllmEngine

    built = []

    def load(spec, device, parallel, seed):
        built.append((spec.name, parallel, seed))
        return ClosingEngine()

    monkeypatch.setattr(VllmEngine, "load", staticmethod(load))
    factory = EngineFactory(EngineSettings(model="dummy:tiny", seed=3), CPU, ModelChecks(), lambda *a: None)
    one, two = ParallelSpec(), ParallelSpec(tensor=2)
    first = factory.vllm_engine(one)
    assert factory.vllm_engine(one) is first and factory.vllm_engine(two) is not first
    assert built == [("dummy:tiny", one, 3), ("dummy:tiny", two, 3)]
    in_process = factory.engine_for("dummy:tiny")
    factory.close()
    assert first.closed == 1 and factory.vllm_engine(two).closed == 1
    assert in_process.module is not None  # a transformers model has nothing to stop; closing it is a no-op


# ---- case settings ------------------------------------------------------------------------------
def node(**marker):
    mark = pytest.mark.inferlab(**marker).mark if marker else None
    return SimpleNamespace(nodeid="t.py::test_x", name="test_x", get_closest_marker=lambda name: mark)


SETTINGS = SimpleNamespace(rounds="auto", warmup=1, slo=SLO(ttft_ms=900), seed=7, precision=0.05, max_rounds=10,
                           round_budget=90.0, explicit=frozenset())


def test_case_settings_are_the_marker_over_the_ini_and_defaults():
    case = CaseSettings.read(node(rounds=5, tolerance={"tpot_ms": 0.1}), SETTINGS)
    assert (case.rounds, case.warmup, dict(case.tolerance), case.seed) == (5, 1, {"tpot_ms": 0.1}, 7)
    adaptive = CaseSettings.read(node(precision=0.02, max_rounds=6), SETTINGS)
    assert adaptive.rounds is None and (adaptive.rule.precision, adaptive.rule.max_rounds) == (0.02, 6)


def test_the_command_line_beats_the_marker():
    """``inferlab ab`` passes --inferlab-rounds=16: a suite's marker rounds=3 must not cut its pairs."""
    given = SimpleNamespace(**{**vars(SETTINGS), "rounds": 16, "explicit": frozenset({"rounds"})})
    assert CaseSettings.read(node(rounds=3, warmup=2), given).rounds == 16
    assert CaseSettings.read(node(rounds=3, warmup=2), given).warmup == 2  # not given: the marker's


@pytest.mark.parametrize("marker, message", [
    ({"rounds": 0}, r"inferlab\(rounds=0\) must be an integer >= 1"),
    ({"warmup": "2"}, r"inferlab\(warmup='2'\) must be an integer >= 0"),
    ({"tolerance": 0.1}, r"tolerance=...\) must be a dict"),
    ({"slo": {"ttft": 1}}, r"no SLO on 'ttft'"),
    ({"round": 2}, r"unknown setting\(s\) \['round'\]; known: rounds, warmup, tolerance, slo, precision, max_rounds"),
    ({"precision": 2.0}, r"adaptive rounds: precision=2.0"),
])
def test_a_bad_marker_is_a_usage_error_naming_the_test(marker, message):
    with pytest.raises(pytest.UsageError, match=f"t.py::test_x: .*{message}"):
        CaseSettings.read(node(**marker), SETTINGS)


def test_slo_precedence_is_said_never_silent():
    case = CaseSettings.read(node(slo={"ttft_ms": 500}), SETTINGS)
    explicit = case.slo(SLO(ttft_ms=2000))
    assert explicit.slo == SLO(ttft_ms=2000) and explicit.source == "measure(slo=...)"
    assert explicit.overridden == "@pytest.mark.inferlab(slo=...)"  # the lab warns with this
    marked = case.slo(None)
    assert marked.slo == SLO(ttft_ms=500) and marked.overridden is None  # a project default is meant to be overridden
    plain = CaseSettings.read(node(), SETTINGS).slo(None)
    assert plain.source == "--inferlab-slo" and plain.to_dict()["bounds"] == {"ttft_ms": 900}
    assert case.slo(SLO(ttft_ms=500)).overridden is None  # the same bounds twice override nothing


# ---- the gate -----------------------------------------------------------------------------------
GATE_SETTINGS = GateSettings(max_interference=0.1, tolerance={}, alpha=0.05, no_gate=False, save_baseline=False,
                                confirm=2)


def gate_record(tpot, run_id="r1", share=0.0):
    return from_stored({
        "run_id": run_id, "machine_id": "m", "test_id": "t.py::test_x", "spec_id": "0123456789ab",
        "spec": {}, "environment": {"git": {"commit": "f" * 40}}, "evals": {},
        "conditions": {"other_cpu_share": share, "host_ref_s": None},
        "measurements": {"tpot_ms": {"unit": "ms", "value": tpot, "samples": [tpot]},
                         "peak_mem_bytes": {"unit": "B", "value": 1000.0, "samples": [1000.0]}}})


@pytest.fixture
def gate(tmp_path):
    """A gate over a baseline of three runs of tpot_ms ~40 ms."""
    store = BaselineStore(tmp_path)
    for i, value in enumerate((40.0, 40.4, 39.6)):
        store.save(gate_record(value, f"r{i}"))
    return Gate(GATE_SETTINGS, store)


def test_gate_judges_against_the_history_and_only_gates_its_own_machine(gate):
    same = gate.judge(gate_record(80.0), {})
    assert same.gating and same.regressed == ["tpot_ms"] and same.baseline["same_machine"]
    other = gate.judge(dataclasses.replace(gate_record(80.0), machine_id="other"), {})
    assert other.regressed == [] and not other.gating and not other.baseline["same_machine"]  # reported, never gating
    assert "another machine fingerprint (m, this one is other)" in other.warning
    noisy = gate.judge(gate_record(80.0, share=0.5), {})
    assert "other processes used 50% of the CPU" in noisy.invalid
    assert {v.outcome for v in noisy.verdicts if v.metric == "tpot_ms"} == {"invalid"}


def test_a_regression_stands_only_if_every_remeasurement_regresses(gate):
    first = gate.judge(gate_record(80.0), {})
    record = Record(run_id="r9", test_id="t.py::test_x", params={}, spec={}, spec_id="0123456789ab",
                    measurements={}, absent={}, engine={}, environment={"git": {"commit": "f" * 40}}, machine_id="m",
                    seed=0, started_at="", finished_at="", rounds=1, warmup_rounds=0, conditions={})
    fast = {"tpot_ms": Measurement("ms", 40.1, (40.1,)), "peak_mem_bytes": Measurement("B", 1000.0, (1000.0,))}
    said = []
    judged, confirmations = gate.confirm(record, first, {}, lambda: (fast, {"host_ref_s": None}), said.append)
    tpot = next(v for v in judged.verdicts if v.metric == "tpot_ms")
    assert tpot.outcome == "inconclusive" and "a disturbance of the host" in tpot.reason
    assert len(confirmations) == 1 and said == ["re-measuring to confirm a regression in tpot_ms (1/2)"]


def test_a_re_measurement_within_the_cases_own_tolerance_never_confirms(tmp_path):
    """The tolerances the case is judged with decide the confirmation too (the catalog's 5% did: a 10x
    transient first measurement and a re-measurement at 1.15x under a 50% tolerance stood as a regression)."""
    store = BaselineStore(tmp_path)
    for i, value in enumerate((40.0, 40.4, 39.6)):
        store.save(gate_record(value, f"r{i}"))
    gate = Gate(dataclasses.replace(GATE_SETTINGS, tolerance={"tpot_ms": 0.5}), store)
    first = gate.judge(gate_record(400.0), {})
    assert [v.outcome for v in first.verdicts if v.metric == "tpot_ms"] == ["regressed"]
    slow = {"tpot_ms": Measurement("ms", 46.0, (46.0,)), "peak_mem_bytes": Measurement("B", 1000.0, (1000.0,))}
    record = Record(run_id="r9", test_id="t.py::test_x", params={}, spec={}, spec_id="0123456789ab",
                    measurements={"tpot_ms": Measurement("ms", 400.0, (400.0,)), **{k: v for k, v in slow.items()
                                                                                     if k != "tpot_ms"}},
                    absent={}, engine={}, environment={"git": {"commit": "f" * 40}}, machine_id="m", seed=0,
                    started_at="", finished_at="", rounds=1, warmup_rounds=0, conditions={"host_ref_s": None})
    judged, confirmations = gate.confirm(record, first, {}, lambda: (slow, {"host_ref_s": None}), lambda text: None)
    tpot = next(v for v in judged.verdicts if v.metric == "tpot_ms")
    assert tpot.outcome == "inconclusive" and "not when re-measured" in tpot.reason
    assert confirmations[0]["together"]["tpot_ms"] == "regressed"  # the mean of 400 and 46 is still slow


def test_merge_keeps_a_confirmed_regression():
    first = Verdict("tpot_ms", "regressed", 80.0, 40.0, 2.0, (1.9, 2.1), 0.05, "2x")
    assert merge(first, dataclasses.replace(first, ratio=1.9)).outcome == "regressed"
    assert merge(first, None).outcome == "inconclusive"
    assert Judgement([first], None, gating=False).regressed == []  # reported, never gating


# ---- enrichers ----------------------------------------------------------------------------------
def case_of(engine, **fields):
    references = ReferenceCache(lambda spec: engine, "cpu", None, 0, lambda text: None)
    return Case(engine, WorkloadSpec("w", "synthetic", input_tokens=4), 1, SamplingSpec(), (), (), references, **fields)


def test_enrichers_add_only_what_the_engine_has():
    plain = enrich(case_of(FakeEngine()), {})
    assert plain == CaseResult()  # no ranks, no counters, no load, no variant, no cache report, no drafting, no tasks
    counting = CountingEngine()
    before = counting.counters()
    counting.total["tokens_from_usage"] += 5
    extras = engine_counters(case_of(counting, counters_before=before), {})
    assert extras.conditions == {"server": {"tokens_from_usage": 5}}  # the case's change, zero changes left out
    ranks = parallel_ranks(case_of(counting), {})
    assert ranks.conditions["parallel"] == {"tensor": 2, "peak_rss_bytes_per_rank": [100, 120]}
    assert ranks.measurements["peak_mem_per_rank_bytes"].samples == (100, 120)


def test_case_results_add_up_and_keep_the_first_failure():
    a = CaseResult({"x": 1}, notes=("a",), output_digest="d1", failure="first", curve=({"rate": 1},))
    b = CaseResult({"y": 2}, {"z": "why"}, {"c": 3}, notes=("b",), output_digest="d2", failure="second",
                   curve=({"rate": 2},))
    total = a + b
    assert total.measurements == {"x": 1, "y": 2} and total.absent == {"z": "why"} and total.conditions == {"c": 3}
    assert total.notes == ("a", "b") and total.note == "a b" and total.failure == "first"
    assert total.output_digest == "d1" and total.curve == ({"rate": 1}, {"rate": 2})
    assert (CaseResult() + b).failure_reason() == "second" and CaseResult().failure_reason() is None


def test_weights_name_why_a_remote_engine_has_no_bytes():
    remote = FakeEngine(dataclasses.replace(INFO, model_bytes=0))
    assert weights(remote, {}).absent == {"model_bytes": "the fake engine does not expose its weights"}
    assert weights(FakeEngine(), {}).measurements["model_bytes"].value == 40


def test_reference_cache_tokenizes_a_workload_once_per_model():
    engine = FakeEngine()
    calls = []
    engine.encode = lambda text, chat: calls.append(text) or [1, 2, 3]
    engine.info = dataclasses.replace(engine.info, vocab_size=5000)  # synthetic ids start at 1000
    cache = ReferenceCache(lambda spec: engine, "cpu", None, 0, lambda text: None)
    workload = WorkloadSpec("w", "synthetic", count=2, input_tokens=4)
    first = cache.requests_for(engine, workload)
    assert cache.requests_for(engine, workload) is first and len(first) == 2
    assert cache.fidelity_of(engine) == {}  # not a quantized variant: nothing to compare


# ---- catalog, registries, parsers ---------------------------------------------------------------
def test_the_catalog_holds_every_fact_of_a_metric():
    tpot = facts_of("tpot_ms")
    assert (tpot.unit, tpot.higher_is_better, tpot.kind, tpot.tolerance) == ("ms", False, TIMING, 0.05)
    assert facts_of("kld_mean").kind == DETERMINISTIC and policy_of("kld_mean").noisy is False
    assert facts_of("some_task.acc").higher_is_better and facts_of("some_task.word_perplexity").higher_is_better is False
    assert facts_of("no_such_metric") is None and policy_of("no_such_metric").kind == "info"
    with pytest.raises(KeyError, match="define it first"):
        unit_of("no_such_metric")


def test_one_resolver_for_every_named_spec():
    spec = resolve_quant("int8-weight")
    assert spec.method == "int8-weight" and resolve_quant(spec) is spec
    with pytest.raises(UnknownNameError, match="Did you mean 'int8-weight'"):
        quant_methods.resolve("int8-weigth", type(spec))


@pytest.mark.parametrize("text, expected", [("tp2", ParallelSpec(2)), ("pp4", ParallelSpec(pipeline=4)),
                                            ("tp2-pp2", ParallelSpec(2, 2))])
def test_parallel_layouts_parse_through_their_axes(text, expected):
    assert ParallelSpec.parse(text) == expected


@pytest.mark.parametrize("text", ["tp", "tpx", "ep2", "tp2-tp4", "tp0"])
def test_a_bad_parallel_layout_names_the_forms(text):
    with pytest.raises(ValueError, match="tpN|degrees must be >= 1"):
        ParallelSpec.parse(text)


def test_assignments_parse_once_for_every_option():
    assert parse_assignments("a=1, b=2\nc=3", "--x", "K=V") == {"a": "1", "b": "2", "c": "3"}
    with pytest.raises(ValueError, match="--x: 'a' is not K=V"):
        parse_assignments("a", "--x", "K=V")
    with pytest.raises(ValueError, match="--x: a is given twice"):
        parse_assignments("a=1 a=2", "--x", "K=V")
