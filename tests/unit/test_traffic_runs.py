"""Realistic traffic through real engines: sessions, shared prefixes and traces on the in-process
batchers (a dummy transformers model) and on the server path (the truth server on loopback, whose
timing and prefix cache are known), with what each engine says about its prefix cache."""

import dataclasses
import statistics

import pytest
from truth_server import RunningTruthServer, TruthSpec

from pytest_inferlab.engines import load_engine
from pytest_inferlab.engines.openai_engine import OpenAIServerEngine
from pytest_inferlab.engines.sources import load_tokenizer, resolve_model
from pytest_inferlab.device import CPU
from pytest_inferlab.measure.enrichers import Case, traffic
from pytest_inferlab.measure.metrics import ttft_ms
from pytest_inferlab.run.batching import BatchingSpec, serve_round
from pytest_inferlab.run.workloads import materialize
from pytest_inferlab.specs.workloads import workloads
from pytest_inferlab.specs.core import SamplingSpec, WorkloadSpec
from pytest_inferlab.specs.load import LoadSpec, parse_load

pytestmark = pytest.mark.alone  # times think times and schedules against a server of known timing


@pytest.fixture(scope="module")
def tiny():
    return load_engine("transformers", resolve_model("dummy:tiny"), CPU)


def sessions_workload(count=6, think="2@0.3"):
    return WorkloadSpec("s", "synthetic", count=count, input_tokens=12, output_tokens=4, sessions=think)


@pytest.mark.parametrize("batching", ["static", "continuous"])
def test_in_process_sessions_resend_their_history_after_the_think_time(tiny, batching):
    spec = sessions_workload()
    firsts = materialize(spec, None, tiny.info.vocab_size)
    trace = serve_round(tiny, firsts, BatchingSpec(batching), LoadSpec.closed(3), SamplingSpec(), budget_s=120)
    by_index = {r.index: r for r in trace.requests}
    assert sorted(by_index) == list(range(6)) and all(r.ok for r in trace.requests)
    for first in range(0, 6, 2):
        one, two = by_index[first], by_index[first + 1]
        assert two.input_tokens == one.input_tokens + 4 + 32  # prompt + answer + the user's next 32 tokens
        ended = one.chunk_times[-1]
        assert 0.3 <= two.t_send - ended < 0.3 + 0.3  # sent its think time after the answer ended


def test_continuous_prefix_sharing_counts_the_cached_prompt_tokens_and_off_counts_none(tiny):
    spec = WorkloadSpec("p", "synthetic", count=8, input_tokens=8, output_tokens=2, prefix="2x64")
    requests = materialize(spec, None, tiny.info.vocab_size)
    rates = {}
    for sharing in (True, False):
        trace = serve_round(tiny, requests, BatchingSpec.of("continuous", prefix_sharing=sharing, page_size=16),
                            LoadSpec.closed(1), SamplingSpec(), budget_s=120)
        case = Case(tiny, spec, 1, SamplingSpec(), requests, [trace], references=None)
        extras = traffic(case, {})
        rates[sharing] = extras.measurements["prefix_cache_hit_rate"].value
        assert extras.conditions["traffic"]["prefix"]["requests_per_group"] == [4, 4]
    # one at a time: each group's later three requests find its 64-token prefix (4 whole pages) cached
    assert rates[False] == 0.0
    assert rates[True] == pytest.approx(6 * 64 / (8 * 72))


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_model("dummy:tiny"))


def test_server_sessions_resend_history_and_answers_and_count_the_servers_cached_tokens(tokenizer):
    spec = TruthSpec(ttft_ms=40, gap_ms=5, tokens=4, prefix_cache=True)
    workload = sessions_workload(count=6, think="3@0.2")
    with RunningTruthServer(spec) as server:
        engine = OpenAIServerEngine(server.url, "truth", resolve_model("dummy:tiny"), tokenizer)
        firsts = materialize(workload, None, tokenizer.vocab_size)
        server.stats(reset=True)
        trace = serve_round(engine, firsts, BatchingSpec("server"), LoadSpec.poisson(5.0), SamplingSpec(), 60)
        seen = [row["prompt"] for row in server.stats()["rows"]]
    assert [r.ok for r in trace.requests] == [True] * 6
    by_index = {r.index: r for r in trace.requests}
    answer = spec.word * spec.tokens
    later = [p for p in seen if len(p) > min(map(len, seen))]
    for session in range(2):
        prompts = sorted((p for p in seen if p.startswith(seen_first(seen, session, firsts, tokenizer))), key=len)
        assert len(prompts) == 3
        assert prompts[1].startswith(prompts[0] + answer) and prompts[2].startswith(prompts[1] + answer)
        one, two = by_index[3 * session], by_index[3 * session + 1]
        assert 0.2 <= two.t_send - one.chunk_times[-1] < 0.2 + 0.05
        assert two.input_tokens == one.input_tokens + 4 + 32
    assert later and all(by_index[i].cached_tokens > 0 for i in (1, 2, 4, 5))
    case = Case(engine, workload, 1, SamplingSpec(), firsts, [trace], references=None)
    extras = traffic(case, {})
    assert 0 < extras.measurements["prefix_cache_hit_rate"].value < 1
    first_ttft = extras.measurements["ttft_first_turn_ms"]
    assert len(first_ttft.samples) == 2 and len(extras.measurements["ttft_later_turns_ms"].samples) == 4


def seen_first(seen, session, firsts, tokenizer):
    """The text the server saw for a session's first turn (the shortest prompt with its start)."""
    start = tokenizer.decode(list(firsts[session].prompt_ids[:4]), skip_special_tokens=False)
    return min((p for p in seen if p.startswith(start)), key=len)


def test_a_trace_replays_on_its_schedule_against_a_server(tokenizer):
    spec = TruthSpec(ttft_ms=20, gap_ms=2, tokens=4)
    workload = dataclasses.replace(workloads.get("trace-chat"), count=12)
    with RunningTruthServer(spec) as server:
        engine = OpenAIServerEngine(server.url, "truth", resolve_model("dummy:tiny"), tokenizer)
        requests = materialize(workload, None, tokenizer.vocab_size)
        trace = serve_round(engine, requests, BatchingSpec("server"), parse_load("trace:4"), SamplingSpec(), 60)
    assert all(r.ok for r in trace.requests)
    sent = [r.t_send - trace.requests[0].t_send for r in trace.requests]
    want = [r.arrival_s / 4 for r in requests]
    assert max(abs(a - b) for a, b in zip(sent, want)) < 1e-6  # t_send is the schedule; lag is kept apart
    assert statistics.median(trace.arrival_lags_s) < 0.005
    assert min(map(ttft_ms, trace.requests)) >= 20


def overlap(traces, t0, start, end):
    """Most requests in flight at once among those sent in [start, end) seconds after ``t0``."""
    spans = [(r.t_send - t0, r.chunk_times[-1] - t0) for r in traces if start <= r.t_send - t0 < end]
    return max(sum(a <= s < b for a, b in spans) for s, _ in spans)


def test_a_staged_closed_loop_against_a_server_runs_each_stages_clients(tokenizer):
    spec = TruthSpec(ttft_ms=50, gap_ms=5, tokens=4)
    workload = WorkloadSpec("w", "synthetic", count=40, input_tokens=8, output_tokens=4)
    with RunningTruthServer(spec) as server:
        engine = OpenAIServerEngine(server.url, "truth", resolve_model("dummy:tiny"), tokenizer)
        requests = materialize(workload, None, tokenizer.vocab_size)
        trace = serve_round(engine, requests, BatchingSpec("server"), parse_load("closed:1x0.6,3x5"), SamplingSpec(), 60)
    assert all(r.ok for r in trace.requests)
    t0 = min(r.t_send for r in trace.requests)
    assert overlap(trace.requests, t0, 0.0, 0.55) == 1 and overlap(trace.requests, t0, 0.65, 99) == 3
