"""Realistic traffic as a suite uses it: workloads and loads as parameters, records that carry the
traffic's shape, per-turn TTFT and the prefix-cache hit rate, and bad input refused at collection."""

import json

import pytest

ARGS = ("--inferlab-model=dummy:tiny", "--inferlab-rounds=1", "--inferlab-warmup=0", "--inferlab-threads=1",
        "-p", "no:cacheprovider", "-rs")

SUITE = """
import pytest
from pytest_inferlab import BatchingSpec, WorkloadSpec

CHAT = WorkloadSpec("chat", "synthetic", count=6, input_tokens=16, output_tokens=4, sessions="3@0.1",
                    prefix="1x32")

@pytest.mark.parametrize("load", ["gamma:20,0.5", "closed:2"], indirect=True)
@pytest.mark.parametrize("workload", [CHAT], indirect=True)
def test_sessions(lab, model, workload, load):
    lab.measure(model, workload, batching=BatchingSpec.of("continuous", prefix_sharing=True, page_size=16), load=load)

@pytest.mark.parametrize("workload", ["trace-chat"], indirect=True)
def test_trace(lab, model, workload):
    lab.measure(model, workload)  # a trace runs on its own times when no load is given
"""


def records(pytester):
    return [json.loads(p.read_text()) for p in (pytester.path / ".inferlab" / "runs").rglob("*.json")
            if p.name != "manifest.json"]


@pytest.mark.slow
def test_sessions_and_traces_run_as_parameters_and_their_records_say_what_they_were(pytester):
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeconftest("""
import pytest

@pytest.fixture
def workload_overrides(request):
    return {"count": 6} if "trace" in request.node.name else {}
""")
    result = pytester.runpytest_subprocess(*ARGS)
    assert result.ret == 0, result.stdout.str()
    found = {r["test_id"].rpartition("::")[2]: r for r in records(pytester) if "test_id" in r}
    assert set(found) == {"test_sessions[chat-gamma:20,0.5]", "test_sessions[chat-closed:2]", "test_trace[trace-chat]"}
    for name in ("test_sessions[chat-gamma:20,0.5]", "test_sessions[chat-closed:2]"):
        record = found[name]
        values = {m: v["value"] for m, v in record["measurements"].items()}
        assert values["failed_requests"] == 0
        assert len(record["measurements"]["ttft_first_turn_ms"]["samples"]) == 2
        assert len(record["measurements"]["ttft_later_turns_ms"]["samples"]) == 4
        assert values["prefix_cache_hit_rate"] > 0  # the shared prefix, then each session's history
        traffic = record["conditions"]["traffic"]
        assert traffic["sessions"]["turns"] == 3 and traffic["prefix"]["requests_per_group"] == [2]
        assert "marker" in traffic["uniqueness"]
        assert record["spec"]["workload"]["sessions"]["turns"] == 3
    trace = found["test_trace[trace-chat]"]
    assert trace["spec"]["load"]["process"] == "trace" and trace["spec"]["load"]["speedup"] == 1.0
    assert trace["conditions"]["traffic"]["trace"]["requests"] == 6
    assert trace["conditions"]["load_generator"]["shortfall"] is None
    assert trace["measurements"]["failed_requests"]["value"] == 0


def usage_error(pytester, suite, expected):
    pytester.makepyfile(test_suite=suite)
    result = pytester.runpytest_subprocess(*ARGS)
    assert result.ret == 4, result.stdout.str()
    result.stderr.fnmatch_lines([expected])


@pytest.mark.slow  # four pytest subprocesses (~40 s): the default run keeps the unit checks of each error
def test_bad_traffic_is_a_usage_error_at_collection_naming_what_is_wrong(pytester):
    bad = pytester.path / "bad.jsonl"
    bad.write_text('{"timestamp": 100, "input_length": 4, "output_length": 2}\n'
                   '{"timestamp": 50, "input_length": 4, "output_length": 2}\n')
    one_workload = """
import pytest
from pytest_inferlab import WorkloadSpec

@pytest.mark.parametrize("workload", [%s], indirect=True)
def test_it(lab, model, workload):
    pass
"""
    usage_error(pytester, one_workload % f"WorkloadSpec('t', 'trace', trace={str(bad)!r})",
                "*bad.jsonl:2: timestamp 50 ms goes back in time*")
    usage_error(pytester, one_workload % "WorkloadSpec('p', 'synthetic', input_tokens=4, prefix='2x9000')",
                "*parameter workload='p': *shared prefix of 9000 tokens*context of 8192*")
    with_load = """
import pytest

@pytest.mark.parametrize("load", [%r], indirect=True)
@pytest.mark.parametrize("workload", ["short-chat"], indirect=True)
def test_it(lab, model, workload, load):
    pass
"""
    usage_error(pytester, with_load % "trace:2",
                "*load 'trace:2' replays a trace's times, but workload 'short-chat' is not a trace*")
    usage_error(pytester, with_load % "ramp:2", "*parameter load='ramp:2': *needs an end rate*")
