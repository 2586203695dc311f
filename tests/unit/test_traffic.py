"""Realistic traffic: length distributions, shared prefixes, sessions, bursty/ramped/staged arrivals
and trace replay, as specs (frozen, hashed, text forms, clear errors) and as the requests and
schedules they become."""

import dataclasses
import json
import statistics
from pathlib import Path

import pytest

from pytest_inferlab.engines.sources import resolve_model
from pytest_inferlab.run.batching import Arrivals
from pytest_inferlab.run.replay import main as write_trace, read_trace
from pytest_inferlab.ground.trace import Request, RequestTrace
from pytest_inferlab.run.traffic import FIRST_PLAIN_TOKEN_ID, check_workload, traffic_facts
from pytest_inferlab.run.workloads import materialize
from pytest_inferlab.specs.workloads import workloads
from pytest_inferlab.specs.core import RunSpec, WorkloadSpec, spec_dict
from pytest_inferlab.specs.load import LoadSpec, parse_load
from pytest_inferlab.specs.traffic import TRACES_DIR, Lengths, parse_lengths, parse_prefix, parse_sessions

VOCAB = 49152


def synthetic(**fields):
    return WorkloadSpec(**{"name": "t", "prompts": "synthetic", "count": 8, "output_tokens": 4, **fields})


# ---- lengths --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, low, high", [("fixed:64", 64, 64), ("uniform:16-80", 16, 80),
                                             ("normal:64,32,8,120", 8, 120), ("lognormal:64,0.8,4,400", 4, 400)])
def test_lengths_are_seeded_and_stay_in_their_bounds(text, low, high):
    import random

    lengths = parse_lengths(text)
    draws = lengths.draw(random.Random(3), 2000)
    assert draws == lengths.draw(random.Random(3), 2000)
    assert min(draws) >= low and max(draws) <= high
    if lengths.kind != "fixed":
        assert len(set(draws)) > 20 and abs(statistics.median(draws) - lengths.mean) < 0.15 * lengths.mean
    assert parse_lengths(lengths.label) == lengths  # the label is a text form that parses back


@pytest.mark.parametrize("text, message", [
    ("normal:64,-1", "stdev -1.0 must be >= 0"), ("uniform:80-16", "min 80 > max 16"),
    ("normal:64,8,100,20", "min 100 > max 20"), ("gauss:64,8", "expected fixed:<n>"), ("normal:64", "expected")])
def test_impossible_lengths_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_lengths(text)


def test_a_bad_distribution_in_a_workload_names_the_workload_and_the_field():
    with pytest.raises(ValueError, match=r"workload 't': input_lengths: lengths normal:64,-2.*stdev"):
        synthetic(input_lengths="normal:64,-2")
    with pytest.raises(ValueError, match="prefix needs prompts='synthetic'"):
        WorkloadSpec("t", "short_chat", prefix="2x8")


def test_output_lengths_vary_per_request_and_input_lengths_set_the_own_part():
    spec = synthetic(count=200, input_lengths="normal:40,10,20,60", output_lengths="uniform:2-9")
    requests = materialize(spec, None, VOCAB)
    assert {r.max_new_tokens for r in requests} == set(range(2, 10))
    assert 20 <= min(len(r.prompt_ids) for r in requests) and max(len(r.prompt_ids) for r in requests) <= 60


# ---- uniqueness and shared prefixes --------------------------------------------------------------
def common(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_prompts_share_exactly_their_groups_prefix_and_nothing_by_accident():
    spec = synthetic(count=12, input_lengths="fixed:10", prefix="3x16")
    requests = materialize(spec, None, VOCAB)
    for a in requests:
        for b in requests:
            if a.index < b.index:
                same_group = a.index % 3 == b.index % 3
                assert common(a.prompt_ids, b.prompt_ids) == (16 if same_group else 0)
    assert all(len(r.prompt_ids) == 26 for r in requests)
    plain = materialize(synthetic(count=12, input_tokens=10), None, VOCAB)
    assert all(common(a.prompt_ids, b.prompt_ids) == 0 for a in plain for b in plain if a.index < b.index)
    assert sorted(r.prompt_ids[0] for r in plain) == list(range(FIRST_PLAIN_TOKEN_ID, FIRST_PLAIN_TOKEN_ID + 12))


def test_weighted_prefix_buckets_follow_their_weights_and_the_record_says_so():
    spec = synthetic(count=400, input_tokens=4, prefix="2x8:3/1")
    requests = materialize(spec, None, VOCAB)
    facts = traffic_facts(spec, requests)
    members = facts["prefix"]["requests_per_group"]
    assert sum(members) == 400 and 0.68 < members[0] / 400 < 0.82
    assert "marker" in facts["uniqueness"] and facts["prefix"]["tokens"] == 8
    with pytest.raises(ValueError, match="weights"):
        parse_prefix("2x8:1")


# ---- sessions -----------------------------------------------------------------------------------
def test_a_sessions_next_turn_resends_the_history_with_new_user_tokens():
    spec = synthetic(count=9, input_tokens=6, sessions=parse_sessions("3@0.5"), output_lengths="fixed:3")
    firsts = materialize(spec, None, VOCAB)
    assert [r.index for r in firsts] == [0, 3, 6] and all(r.turn == 0 for r in firsts)
    first = firsts[0]
    second, think = first.next_turn((11, 12, 13))
    assert think == 0.5 and second.index == 1 and second.turn == 1
    assert second.prompt_ids[: 6 + 3] == first.prompt_ids + (11, 12, 13)
    assert len(second.prompt_ids) == 6 + 3 + 32  # the user's next text: 32 tokens by default
    third, _ = second.next_turn((21, 22, 23))
    assert third.index == 2 and third.next_turn((1,)) is None
    assert first.longest_tokens() == 6 + 3 * 3 + 2 * 32
    facts = traffic_facts(spec, firsts)
    assert facts["sessions"] == {"sessions": 3, "turns": 3, "think_s": 0.5, "think": "fixed", "user_tokens": "fixed:32"}


def test_sessions_interleave_in_a_closed_loop_each_client_waiting_out_its_think_time():
    spec = synthetic(count=4, input_tokens=4, sessions="2@1")
    a, b = materialize(spec, None, VOCAB)
    arrivals = Arrivals(LoadSpec.closed(1), [a, b], t0=0.0)
    assert [r.index for _, r in arrivals.take_due(0.0)] == [0]
    arrivals.completed([(a, answered(a))], 2.0)
    assert arrivals.take_due(2.5) == []  # the client thinks until 3.0; b waits for this client
    (when, follow), = arrivals.take_due(3.0)
    assert (when, follow.index, follow.turn) == (3.0, 1, 1)
    arrivals.completed([(follow, answered(follow))], 4.0)
    assert [r.index for _, r in arrivals.take_due(4.0)] == [2]  # the session ended: the next one starts


def test_a_failed_turn_ends_its_session_and_its_turns_left_fail_unsent():
    spec = synthetic(count=3, input_tokens=4, sessions="3@0")
    (a,) = materialize(spec, None, VOCAB)
    arrivals = Arrivals(LoadSpec.poisson(1.0), [a], t0=0.0)
    arrivals.take_due(0.0)
    arrivals.completed([(a, RequestTrace.failed(a, 0.0, "boom"))], 1.0)
    assert not arrivals and [(t.index, t.ok) for t in arrivals.abandoned] == [(1, False), (2, False)]
    assert "turn 1 of its session failed" in arrivals.abandoned[0].error


def answered(request):
    return RequestTrace(request.index, 0.0, (0.1, 0.2), (1, 1), len(request.prompt_ids), (7, 8))


# ---- arrivals ------------------------------------------------------------------------------------
def gaps(offsets):
    return [b - a for a, b in zip(offsets, offsets[1:])]


def cv(values):
    return statistics.pstdev(values) / statistics.fmean(values)


def test_gamma_arrivals_hit_the_target_rate_exactly_and_a_low_shape_is_burstier():
    bursty, poisson_like = parse_load("gamma:4,0.25"), parse_load("gamma:4,1")
    for load in (bursty, poisson_like):
        offsets = load.offsets(401)
        assert offsets[0] == 0 and offsets[-1] == pytest.approx(400 / 4)  # rescaled: (n - 1) / rate
    assert cv(gaps(bursty.offsets(401))) > 1.6 > 1.2 > cv(gaps(poisson_like.offsets(401))) > 0.8
    assert bursty.label == "gamma:4,0.25" and parse_load(bursty.label) == bursty


def test_ramps_speed_up_linearly_or_geometrically_and_stages_follow_each_other():
    for text in ("ramp:1-8", "ramp-exp:1-8"):
        g = gaps(parse_load(text).offsets(400))
        assert statistics.fmean(g[:50]) > 3 * statistics.fmean(g[-50:])
    linear, geometric = gaps(parse_load("ramp:1-8").offsets(400)), gaps(parse_load("ramp-exp:1-8").offsets(400))
    assert statistics.fmean(geometric[150:250]) > statistics.fmean(linear[150:250])  # slower in the middle
    staged = parse_load("stages:2x20,10x20").offsets(400)
    first = [o for o in staged if o < 20]
    second = [o for o in staged if 20 <= o < 40]
    assert 25 < len(first) < 55 and 150 < len(second) < 250
    assert LoadSpec.staged((2, 20), (10, 20)) == parse_load("stages:2x20,10x20")


@pytest.mark.parametrize("text, message", [("gamma:4,0", "burstiness"), ("gamma:4", "expected closed"),
                                           ("ramp:0-8", "rate > 0"), ("ramp:2", "end rate"),
                                           ("stages:2x0", "stages of rate > 0"), ("trace:0", "speed-up must be > 0"),
                                           ("closed:2x", "expected closed")])
def test_bad_arrival_processes_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_load(text)


def test_loads_that_existed_before_keep_their_spec_ids():
    old_form = {"process": "poisson", "concurrency": None, "rate": 2.0, "burst_size": None, "seed": 0}
    from pytest_inferlab.specs.core import stable_id

    assert parse_load("poisson:2").spec_id == stable_id(old_form)
    assert parse_load("gamma:2,1").spec_id != parse_load("poisson:2").spec_id


# ---- traces ---------------------------------------------------------------------------------------
def trace_workload(path, count=8):
    return WorkloadSpec("replay", "trace", count=count, trace=str(path))


def test_the_shipped_trace_is_what_its_committed_generator_writes(tmp_path):
    shipped = TRACES_DIR / "synthetic-chat.jsonl"
    meta = json.loads(shipped.read_text().splitlines()[0])["meta"]
    args = meta["generator"].split()[3:]
    assert write_trace([*args, "--out", str(tmp_path / "again.jsonl")]) == 0
    assert (tmp_path / "again.jsonl").read_bytes() == shipped.read_bytes()


def test_a_trace_replays_on_time_with_its_lengths_and_shared_blocks(tmp_path):
    path = tmp_path / "t.jsonl"
    lines = [{"meta": {"block_tokens": 4}},
             {"timestamp": 1000, "input_length": 10, "output_length": 3, "hash_ids": [1, 2, 3]},
             {"timestamp": 1500, "input_length": 6, "output_length": 5, "hash_ids": [1, 9]},
             {"timestamp": 3000, "input_length": 5, "output_length": 2}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    requests = materialize(trace_workload(path), None, VOCAB)
    assert [len(r.prompt_ids) for r in requests] == [10, 6, 5] and [r.max_new_tokens for r in requests] == [3, 5, 2]
    assert common(requests[0].prompt_ids, requests[1].prompt_ids) == 4  # block 1 shared, block 2 vs 9 not
    assert common(requests[0].prompt_ids, requests[2].prompt_ids) == 0
    assert LoadSpec.trace(2.0).offsets(requests) == [0.0, 0.25, 1.0]
    with pytest.raises(ValueError, match="carry no arrival times"):
        LoadSpec.trace().offsets(materialize(synthetic(input_tokens=4), None, VOCAB))


def test_a_traces_content_is_in_the_spec_id(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 4, "output_length": 2}\n')
    before = trace_workload(path).spec_id
    path.write_text('{"timestamp": 0, "input_length": 5, "output_length": 2}\n')
    assert trace_workload(path).spec_id != before


@pytest.mark.parametrize("line, message", [
    ('{"timestamp": 0, "input_length": 4}', r":3: missing field\(s\) output_length"),
    ('{"timestamp": 10, "input_length": 4, "output_length": 2', r":3: not JSON"),
    ('{"timestamp": 50, "input_length": 4, "output_length": 2}', r":3: timestamp 50 ms goes back in time"),
    ('{"timestamp": 200, "input_length": 0, "output_length": 2}', r":3: input_length and output_length must be >= 1"),
])
def test_a_bad_trace_line_names_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 4, "output_length": 2}\n'
                    '{"timestamp": 100, "input_length": 4, "output_length": 2}\n' + line + "\n")
    with pytest.raises(ValueError, match=f"{path}" + message):
        read_trace(path)


# ---- the whole spec -------------------------------------------------------------------------------
def test_traffic_workloads_round_trip_through_a_record_and_old_ones_keep_their_ids():
    model = resolve_model("dummy:tiny")
    for name in ("wide-lengths", "shared-prefix", "multi-turn", "trace-chat"):
        spec = RunSpec(model, workloads.get(name), load=parse_load("gamma:2,0.5"))
        rebuilt = RunSpec.from_dict(json.loads(json.dumps(spec_dict(spec))))
        assert rebuilt == spec and rebuilt.spec_id == spec.spec_id
    assert "prefix" not in workloads.get("synthetic").to_dict()  # unset: left out, the old id stands


def test_a_prefix_or_history_beyond_the_context_is_refused_naming_it():
    with pytest.raises(ValueError, match="shared prefix of 9000 tokens.*context of 8192"):
        check_workload(synthetic(input_tokens=4, prefix="2x9000"), 8192)
    with pytest.raises(ValueError, match="can reach 9.* tokens.*3 turn"):
        check_workload(synthetic(count=6, input_tokens=3000, output_tokens=2000, sessions="3@0"), 8192)
    check_workload(workloads.get("multi-turn"), 8192)
    check_workload(workloads.get("trace-chat"), 8192)
    with pytest.raises(ValueError, match="beyond the model's context of 50"):
        check_workload(workloads.get("trace-chat"), 50)


def test_a_missing_trace_names_the_shipped_ones():
    with pytest.raises(ValueError, match="no such file.*synthetic-chat"):
        trace_workload(Path("/nonexistent/trace.jsonl")).spec_id


def test_a_staged_closed_loop_adds_and_retires_clients_at_its_stage_boundaries():
    load = parse_load("closed:1x10,3x10,1x10")
    assert load.label == "closed:1x10,3x10,1x10" and load.concurrency == 3 and parse_load(load.label) == load
    assert [load.clients_at(t) for t in (0, 9.9, 10, 19.9, 20, 99)] == [1, 1, 3, 3, 1, 1]
    assert load.client_starts_s(2, 0.0) == 10.0 and load.client_starts_s(2, 25.0) is None
    arrivals = Arrivals(load, [Request(i, (1,), 1) for i in range(8)], t0=0.0)
    assert [r.index for _, r in arrivals.take_due(0.0)] == [0]
    first = Request(0, (1,), 1)
    arrivals.completed([(first, answered(first))], 5.0)
    assert [(t, r.index) for t, r in arrivals.take_due(10.0)] == [(5.0, 3), (10.0, 1), (10.0, 2)]
    for index in (3, 1):
        done = Request(index, (1,), 1)
        arrivals.completed([(done, answered(done))], 21.0)  # the third stage runs one client: two retire
    assert [r.index for _, r in arrivals.take_due(21.0)] == []
    arrivals.completed([(Request(2, (1,), 1), answered(Request(2, (1,), 1)))], 22.0)
    assert [r.index for _, r in arrivals.take_due(22.0)] == [4]
    with pytest.raises(ValueError, match="whole clients"):
        parse_load("closed:1.5x10")


def test_a_registered_process_carries_its_form_check_label_and_schedule(monkeypatch):
    """A project's own arrival process goes through the same doors as the shipped ones."""
    from pytest_inferlab.specs.load import ArrivalProcess, arrival_processes, load_forms

    def every_other(spec, requests):  # pairs of requests, a pair every 2/rate s
        return [(i // 2) * 2 / spec.rate for i in range(len(requests))]

    monkeypatch.setitem(arrival_processes._items, "pairs", ArrivalProcess.at_rate(every_other, seeded=False))
    load = parse_load("pairs:4", seed=9)
    assert load.label == "pairs:4" and load.open_loop and load.seed == 0 and parse_load(load.label) == load
    assert load.offsets(4) == [0.0, 0.0, 0.5, 0.5]
    assert "pairs:<req/s>" in load_forms()
    with pytest.raises(ValueError, match="load pairs: needs a rate > 0"):
        parse_load("pairs:0")
    with pytest.raises(ValueError, match="expected closed:<concurrency>.*pairs:<req/s>"):
        parse_load("pairs:often")
