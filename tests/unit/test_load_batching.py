"""Arrival processes, the load generator's bookkeeping, curves, SLOs and the vLLM argument mapping:
pure functions on hand-made inputs."""

import statistics

import pytest

from pytest_inferlab.run.batching import Arrivals, BatchingSpec, generator_conditions, resolve_batching
from handmade_records import make_record
from pytest_inferlab.measure.curves import curve_point
from pytest_inferlab.outputs.curves import configuration_label, format_curves
from pytest_inferlab.engines.vllm_args import NoVllmEquivalent, batching_engine_args, kv_engine_args
from pytest_inferlab.optimizations.kv import KVCacheSpec, unsupported_pairing
from pytest_inferlab.specs.load import LoadSpec, parse_load
from pytest_inferlab.measure.metrics import Measurement, measure
from pytest_inferlab.specs.slo import SLO
from pytest_inferlab.ground.trace import Request, RequestTrace, RoundTrace


def test_poisson_schedule_is_seeded_and_has_the_rate():
    offsets = LoadSpec.poisson(4.0, seed=3).offsets(4000)
    assert offsets == LoadSpec.poisson(4.0, seed=3).offsets(4000)
    assert offsets != LoadSpec.poisson(4.0, seed=4).offsets(4000)
    gaps = [b - a for a, b in zip(offsets, offsets[1:])]
    assert statistics.fmean(gaps) == pytest.approx(0.25, rel=0.05)
    assert statistics.stdev(gaps) == pytest.approx(0.25, rel=0.08)  # exponential: sd = mean


def test_constant_and_burst_schedules():
    assert LoadSpec.constant(2).offsets(4) == [0.0, 0.5, 1.0, 1.5]
    # bursts of 3 at 1.5 req/s on average: 3 together every 2 s
    assert LoadSpec.burst(3, 1.5).offsets(7) == [0, 0, 0, 2.0, 2.0, 2.0, 4.0]


@pytest.mark.parametrize("text, expected", [
    ("closed:4", LoadSpec.closed(4)), ("poisson:2.5", LoadSpec.poisson(2.5)), ("constant:1", LoadSpec.constant(1)),
    ("burst:8@0.5", LoadSpec.burst(8, 0.5)),
])
def test_parse_load(text, expected):
    assert parse_load(text) == expected
    assert parse_load(expected.label) == expected


@pytest.mark.parametrize("text, message", [
    ("closed:0", "concurrency >= 1"), ("poisson:-1", "rate > 0"), ("poisson:fast", "expected closed:<concurrency>"),
    ("poison:2", "Did you mean 'poisson'"), ("burst:0@1", "burst size >= 1"),
])
def test_bad_load_names_the_value(text, message):
    with pytest.raises(ValueError, match=message):
        parse_load(text)


def requests(n):
    return [Request(i, (1, 2, 3), 4) for i in range(n)]


def answered(request, ok=True):
    """A trace of ``request`` answered with four tokens (or failed)."""
    if not ok:
        return RequestTrace.failed(request, 0.0, "boom")
    return RequestTrace(request.index, 0.0, (0.1,) * 4, (1,) * 4, len(request.prompt_ids), (7, 8, 9, 10))


def test_closed_loop_sends_one_per_completion():
    arrivals = Arrivals(LoadSpec.closed(2), requests(5), t0=10.0)
    assert [r.index for _, r in arrivals.take_due(10.0)] == [0, 1]
    assert arrivals.take_due(11.0) == []
    first, second = requests(2)
    arrivals.completed([(first, answered(first))], 12.0)
    assert [(t, r.index) for t, r in arrivals.take_due(12.0)] == [(12.0, 2)]
    arrivals.completed([(second, answered(second)), (first, answered(first))], 13.0)
    assert [r.index for _, r in arrivals.take_due(13.0)] == [3, 4]
    assert not arrivals


def test_open_loop_lag_is_counted_only_when_the_generator_waited():
    arrivals = Arrivals(LoadSpec.constant(10), requests(3), t0=0.0)
    arrivals.take_due(0.15)  # engine was busy: 0 and 1 queued, no generator lag
    assert arrivals.lags == []
    arrivals.take_due(0.2015, observed=True)  # waited for #2 and woke 1.5 ms late
    assert arrivals.lags == [pytest.approx(0.0015)]
    assert arrivals.scheduled_req_per_s() == pytest.approx(10.0)
    assert arrivals.offered_req_per_s() == pytest.approx(2 / 0.2015)


def round_with(offered, scheduled, lags=()):
    return RoundTrace(0.0, 1.0, (), arrival_lags_s=tuple(lags), offered_req_per_s=offered, scheduled_req_per_s=scheduled)


def test_generator_shortfall_marks_the_case():
    ok = generator_conditions([round_with(9.7, 10.0, [0.001, 0.003])], LoadSpec.constant(10))
    assert ok["shortfall"] is None and ok["lag_p50_ms"] == pytest.approx(2.0)
    short = generator_conditions([round_with(8.0, 10.0)], LoadSpec.constant(10))
    assert "8 req/s of the 10 req/s scheduled" in short["shortfall"]
    assert generator_conditions([round_with(None, None)], LoadSpec.closed(4))["shortfall"] is None


def test_goodput_attainment_and_queueing():
    def trace(i, ttft_s, tokens, gap_s):
        times = tuple(ttft_s + k * gap_s for k in range(tokens))
        return RequestTrace(i, 0.0, times, (1,) * tokens, 10, t_admit=ttft_s / 2)

    fast, slow = trace(0, 0.1, 5, 0.05), trace(1, 2.0, 5, 0.05)
    failed = RequestTrace(2, 0.0, (), (), 10, ok=False, error="boom")
    measured, _ = measure([RoundTrace(0.0, 4.0, (fast, slow, failed))], SLO(ttft_ms=1000))
    assert measured["slo_attainment"].value == pytest.approx(1 / 3)
    assert measured["goodput_req_per_s"].value == pytest.approx(1 / 4.0)  # window: first send .. round end
    assert measured["queue_ms"].samples == (pytest.approx(50.0), pytest.approx(1000.0))
    assert measured["failed_requests"].value == 1


def test_slo_parsing_names_bad_input():
    assert SLO.parse("ttft_ms=2000, tpot_ms=150", "x") == SLO(ttft_ms=2000, tpot_ms=150)
    with pytest.raises(ValueError, match="x: no SLO on 'itl_ms'"):
        SLO.parse("itl_ms=5", "x")
    with pytest.raises(ValueError, match="must be > 0"):
        SLO.from_mapping({"ttft_ms": 0}, "marker")


def test_curve_point_is_sustained_only_on_schedule_and_within_budget():
    measured = {"slo_attainment": Measurement("fraction", 0.95), "output_tok_per_s": Measurement("tok/s", 50.0),
                "ttft_ms": Measurement("ms", 100.0, (100.0,), 100.0, 100.0, 120.0, 150.0)}
    load = LoadSpec.poisson(2.0)
    assert curve_point(load, measured, {"shortfall": None}, SLO(ttft_ms=200), 0.9)["sustained"]
    assert not curve_point(load, measured, {"shortfall": "late"}, SLO(ttft_ms=200), 0.9)["sustained"]
    assert not curve_point(load, measured, {"cut_by_budget": 1}, SLO(ttft_ms=200), 0.9)["sustained"]
    assert not curve_point(load, measured, {}, SLO(ttft_ms=200), 0.96)["sustained"]
    point = curve_point(load, measured, {}, SLO(ttft_ms=200), 0.9)
    assert point["ttft_p99_ms"] == 150.0 and point["load"] == "poisson:2"
    lines = format_curves({"m static poisson": [point]})
    assert lines[0] == "SLO: ttft_ms<=200 for 90% of requests" and " ok" in lines[2]


def test_configuration_label():
    record = make_record(spec={"model": {"name": "m", "quant": {"method": "int8-weight"}}, "kv_cache": {"kind": "fp8"},
                               "batching": {"kind": "static", "settings": [["max_batch", 8]]}, "workload": {"name": "w"}})
    assert configuration_label(record) == "m int8-weight kv=fp8 static max_batch=8 on w"


def test_batching_registry_and_pairing():
    assert resolve_batching("continuous") == BatchingSpec("continuous")
    with pytest.raises(KeyError, match="Did you mean 'static'"):
        resolve_batching("statc")
    assert unsupported_pairing(KVCacheSpec.of("paged"), None).startswith("KV cache paged is continuous batching's")
    assert "keeps its own paged cache" in unsupported_pairing(KVCacheSpec.of("fp8"), BatchingSpec("continuous"))
    assert unsupported_pairing(KVCacheSpec.of("paged"), BatchingSpec("continuous")) is None
    assert unsupported_pairing(KVCacheSpec.of("fp8"), BatchingSpec("static")) is None


def test_vllm_engine_arguments():
    assert kv_engine_args(None) == {} and kv_engine_args(KVCacheSpec.of("dynamic")) == {}
    assert kv_engine_args(KVCacheSpec.of("fp8")) == {"kv_cache_dtype": "fp8"}
    assert kv_engine_args(KVCacheSpec.of("fp8", format="e5m2")) == {"kv_cache_dtype": "fp8_e5m2"}
    paged = KVCacheSpec.of("paged", page_size=16, num_blocks=2048, prefix_caching=True, gpu_memory_utilization=0.85)
    assert kv_engine_args(paged) == {"block_size": 16, "num_gpu_blocks_override": 2048, "enable_prefix_caching": True,
                                     "gpu_memory_utilization": 0.85}
    with pytest.raises(NoVllmEquivalent, match="page_size=48 is not a vLLM block_size"):
        kv_engine_args(KVCacheSpec.of("paged", page_size=48))
    for kind in ("static", "quanto-int4", "hqq-int4", "offloaded"):
        with pytest.raises(NoVllmEquivalent, match="no vLLM equivalent"):
            kv_engine_args(KVCacheSpec.of(kind))
    assert batching_engine_args(BatchingSpec.of("continuous", max_batch=64, max_batch_tokens=4096)) == {
        "max_num_seqs": 64, "max_num_batched_tokens": 4096}
    assert batching_engine_args(BatchingSpec("sequential")) == {"max_num_seqs": 1}
    with pytest.raises(NoVllmEquivalent, match="batches continuously"):
        batching_engine_args(BatchingSpec("static"))
