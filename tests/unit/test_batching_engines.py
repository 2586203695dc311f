"""The batching engines on a real (tiny, random-weight) transformers model: timestamps under
closed and open loops, one bad request failing alone, bounded paged memory, and the time budget."""

import dataclasses
import time

import pytest

from pytest_inferlab.run.batching import BatchingSpec, serve_round
from pytest_inferlab.run.batching.continuous import BatchingMemoryError
from pytest_inferlab.device import CPU
from pytest_inferlab.engines import load_engine
from pytest_inferlab.specs.load import LoadSpec
from pytest_inferlab.measure.metrics import measure
from pytest_inferlab.specs.slo import SLO
from pytest_inferlab.engines.sources import resolve_model
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.run.workloads import materialize
from pytest_inferlab.specs.workloads import workloads

pytestmark = pytest.mark.alone  # times budgets and arrival schedules

ENGINES = ["sequential", "static", "continuous"]


@pytest.fixture(scope="module")
def tiny():
    return load_engine("transformers", resolve_model("dummy:tiny"), CPU)


@pytest.fixture(scope="module")
def requests(tiny):
    spec = dataclasses.replace(workloads.get("short-chat"), count=6, output_tokens=8)
    return materialize(spec, tiny.encode, tiny.info.vocab_size)


@pytest.mark.parametrize("engine", ENGINES)
def test_closed_loop_serves_every_request_with_timestamps(tiny, requests, engine):
    trace = serve_round(tiny, requests, BatchingSpec(engine), LoadSpec.closed(3), SamplingSpec(), budget_s=60)
    assert [r.index for r in trace.requests] == list(range(6)) and all(r.ok for r in trace.requests)
    for r in trace.requests:
        assert len(r.chunk_times) == 8 and r.output_tokens == 8
        assert r.t_send <= r.t_admit <= r.chunk_times[0] and list(r.chunk_times) == sorted(r.chunk_times)
    # closed loop at 3: the 4th request is sent when one of the first three completes
    first_done = min(r.chunk_times[-1] for r in trace.requests[:3])
    assert trace.requests[3].t_send >= first_done - 1e-3


def test_engines_agree_on_greedy_tokens(tiny, requests):
    outputs = {engine: [r.output_ids for r in serve_round(tiny, requests, BatchingSpec(engine), LoadSpec.closed(3),
                                                          SamplingSpec(), budget_s=60).requests]
               for engine in ENGINES}
    assert outputs["sequential"] == outputs["static"]
    agree = sum(a == b for x, y in zip(outputs["sequential"], outputs["continuous"]) for a, b in zip(x, y))
    assert agree >= 0.9 * 6 * 8  # paged attention sums in another order: rare near-ties may flip


@pytest.mark.parametrize("engine", ENGINES)
def test_open_loop_arrivals_keep_their_schedule(tiny, requests, engine):
    load = LoadSpec.poisson(20.0, seed=1)
    trace = serve_round(tiny, requests, BatchingSpec(engine), load, SamplingSpec(), budget_s=60)
    start = trace.requests[0].t_send
    offsets = [r.t_send - start for r in trace.requests]
    assert offsets == pytest.approx(load.offsets(6), abs=1e-6)  # TTFT counts from the scheduled arrival
    assert trace.scheduled_req_per_s is not None and trace.offered_req_per_s >= 0.95 * trace.scheduled_req_per_s
    measured, _ = measure([trace], SLO(ttft_ms=10_000))
    assert measured["queue_ms"].value >= 0 and measured["slo_attainment"].value == 1.0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bad_request_fails_alone(tiny, requests, engine):
    bad = dataclasses.replace(requests[1], prompt_ids=requests[1].prompt_ids + (tiny.info.vocab_size + 7,))
    batch = [requests[0], bad, *requests[2:4]]
    trace = serve_round(tiny, batch, BatchingSpec(engine), LoadSpec.closed(4), SamplingSpec(), budget_s=60)
    outcome = {r.index: r.ok for r in trace.requests}
    assert outcome == {0: True, 1: False, 2: True, 3: True}
    assert trace.requests[1].error
    measured, _ = measure([trace])
    assert measured["failed_requests"].value == 1 and measured["output_tok_per_s"].value > 0


def test_continuous_cache_larger_than_memory_is_refused_before_allocation(tiny, requests):
    spec = BatchingSpec.of("continuous", num_blocks=10**9)
    started = time.perf_counter()
    with pytest.raises(BatchingMemoryError, match="num_blocks=1000000000 .* lower num_blocks"):
        serve_round(tiny, requests, spec, LoadSpec.closed(2), SamplingSpec(), budget_s=60)
    assert time.perf_counter() - started < 5


def test_continuous_cache_is_bounded_and_measured(tiny, requests):
    spec = BatchingSpec.of("continuous", page_size=16, max_batch=4)
    pool = serve_round(tiny, requests, spec, LoadSpec.closed(4), SamplingSpec(), budget_s=60).kv  # the round's
    longest = max(len(r.prompt_ids) + r.max_new_tokens for r in requests)
    blocks = 4 * -(-longest // 16)
    per_token = 2 * 2 * 2 * 16 * 4  # K and V, 2 layers, 2 KV heads of 16 dims, fp32
    assert pool.positions >= blocks * 16
    assert pool.nbytes >= blocks * 16 * per_token
    assert pool.nbytes < 4 * blocks * 16 * per_token  # bounded by the plan, not by free memory


@pytest.mark.parametrize("engine", ["static", "continuous"])
def test_saturated_engine_stops_at_its_budget(tiny, engine):
    spec = dataclasses.replace(workloads.get("short-chat"), count=40, output_tokens=64)
    flood = materialize(spec, tiny.encode, tiny.info.vocab_size)
    started = time.perf_counter()
    trace = serve_round(tiny, flood, BatchingSpec.of(engine, max_batch=2), LoadSpec.poisson(500.0), SamplingSpec(),
                        budget_s=1.0)
    assert time.perf_counter() - started < 4.0  # the budget, one batch and the manager's shutdown
    assert trace.cut_by_budget
    cut = [r for r in trace.requests if not r.ok]
    assert cut and all("time budget of 1 s ran out" in r.error for r in cut)
    assert len(trace.requests) == 40
