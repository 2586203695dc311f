"""Batching engines under load through the fixtures: records with goodput and the generator's
conditions, the latency-throughput PNG and summary, a sweep within its budget, faults as data."""

import json

import pytest

ARGS = ("--inferlab-model=dummy:tiny", "--inferlab-rounds=1", "--inferlab-warmup=0", "--inferlab-threads=1",
        "-p", "no:cacheprovider", "-rs")

SUITE = """
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 6, "output_tokens": 6}

@pytest.mark.inferlab(slo={"ttft_ms": 60000, "tpot_ms": 60000})
@pytest.mark.parametrize("load", ["closed:3", "poisson:50"], indirect=True)
@pytest.mark.parametrize("batching", ["sequential", "static", "continuous"], indirect=True)
def test_load(lab, model, workload, batching, load):
    lab.measure(model, workload, batching=batching, load=load)

@pytest.mark.parametrize("batching", ["static"], indirect=True)
@pytest.mark.parametrize("kv_cache", ["paged", "fp8"], indirect=True)
def test_pairing(lab, model, workload, batching, kv_cache):
    pass

def test_sweep(lab, model, workload):
    lab.sweep(model, workload, batching="static", slo=__import__("pytest_inferlab").SLO(ttft_ms=60000), budget_s=30)
"""


def records(pytester):
    return [json.loads(p.read_text()) for p in (pytester.path / ".inferlab" / "runs").rglob("*.json")]


@pytest.mark.slow
def test_load_cases_write_records_points_and_the_curve(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess(*ARGS)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines([
        "*inferlab latency-throughput*", "SLO: ttft_ms<=60000 for 90% of requests*",
        "*dummy:tiny continuous on short-chat closed*closed:3*100% ok*",
        "*dummy:tiny static on short-chat poisson*poisson:50*",
        "plot: *latency_throughput.png",
        "*SKIPPED*KV cache paged is continuous batching's own: pair it with batching=continuous*",
        "*8 passed, 1 skipped*"])
    found = records(pytester)
    loads = {(r["params"]["batching"], r["params"]["load"]): r for r in found if "load" in r["params"]}
    assert len(loads) == 6
    for (engine, load), record in loads.items():
        values = {m: v["value"] for m, v in record["measurements"].items()}
        assert values["failed_requests"] == 0 and values["slo_attainment"] == 1.0
        assert values["goodput_req_per_s"] == values["req_per_s"] > 0
        assert record["spec"]["batching"]["kind"] == engine and record["spec"]["load"]["process"] == load.split(":")[0]
        assert record["curve"][0]["load"] == load and record["curve"][0]["sustained"]
        generator = record["conditions"]["load_generator"]
        if load.startswith("poisson"):
            assert generator["shortfall"] is None and values["offered_req_per_s"] > 0.95 * generator["scheduled_req_per_s"]
    assert len({r["spec_id"] for r in loads.values()}) == 6
    png = next((pytester.path / ".inferlab" / "runs").rglob("latency_throughput.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    sweep = next(r for r in found if r["test_id"].endswith("test_sweep"))
    rates = sweep["conditions"]["sweep"]["rates"]
    assert sweep["measurements"]["saturation_req_per_s"]["value"] == max(rates)  # a generous SLO holds at every rate
    assert sweep["conditions"]["sweep"]["saturated"] is False  # so that rate is a lower bound
    result.stdout.fnmatch_lines(["*saturation >= * req/s (every swept rate sustained)*"])
    assert sweep["curve"][0]["load"].startswith("closed:") and len(sweep["curve"]) == len(rates) + 1


SWEEP_TIGHT = """
import time
from pytest_inferlab import SLO

def test_sweep(lab, model, workload):
    started = time.perf_counter()
    record = lab.sweep(model, workload, batching="sequential", rates=[1, 50, 500, 5000], slo=SLO(tpot_ms=0.001),
                       budget_s=4)
    assert time.perf_counter() - started < 4 + 4  # the budget, the last batch, the warm-up wave
    assert "no swept rate met the SLOs (tpot_ms<=0.001)" in record.absent["saturation_req_per_s"]
    assert record.curve[-1]["sustained"] is False and record.conditions["sweep"]["saturated"] is True
"""


@pytest.mark.slow
@pytest.mark.alone
def test_a_sweep_on_a_saturated_engine_ends_within_its_budget(pytester):
    pytester.makepyfile(test_suite=SWEEP_TIGHT)
    pytester.makeconftest("import pytest\n@pytest.fixture\ndef workload_overrides():\n"
                          "    return {'count': 30, 'output_tokens': 32}\n")
    result = pytester.runpytest_inprocess(*ARGS)
    assert result.ret == 0, result.stdout.str()


FAILING_REQUEST = """
import dataclasses
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 4, "output_tokens": 6}

@pytest.fixture
def poisoned(inferlab_session, model, workload):
    # the second request of the workload gets a token id the model does not have: a real failure
    requests = inferlab_session.references.requests_for(model, workload)
    bad = dataclasses.replace(requests[1], prompt_ids=requests[1].prompt_ids + (model.info.vocab_size + 3,))
    requests[1] = bad

@pytest.mark.parametrize("batching", ["static", "continuous"], indirect=True)
def test_failure(lab, model, workload, batching, poisoned):
    record = lab.measure(model, workload, batching=batching, load="closed:4")
    assert record.measurements["failed_requests"].value == 1
    assert record.measurements["req_per_s"].value > 0
"""


@pytest.mark.slow  # 15-26 s of pytester runs: the default run keeps under 10 minutes
def test_a_request_failing_mid_batch_is_recorded_and_the_rest_carry_on(pytester):
    pytester.makepyfile(test_suite=FAILING_REQUEST)
    result = pytester.runpytest_inprocess(*ARGS)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*1 failed closed:4*", "*2 passed*"])


def test_bad_load_and_batching_names_are_clear(pytester):
    """Both are usage errors at collection, before any model loads, blamed on the parameter."""
    cases = {"load": ("poison:2", "*test_bad_load[[]poison:2]: parameter load='poison:2': *Did you mean 'poisson'*"),
             "batching": ("continous", "*test_bad_batching[[]continous]: parameter batching='continous': *Did you mean "
                                       "'continuous'*")}
    for name, (value, expected) in cases.items():
        pytester.makepyfile(test_suite=f"""
import pytest

@pytest.mark.parametrize("{name}", ["{value}"], indirect=True)
def test_bad_{name}(lab, model, workload, {name}):
    pass
""")
        result = pytester.runpytest_inprocess(*ARGS)
        assert result.ret == 4
        result.stderr.fnmatch_lines([expected])


DIVERGING = """
import dataclasses

import pytest

from pytest_inferlab import Engine


class Diverging(Engine):
    '''The model, except that in a batch of more than one request the second request's third token is
    replaced by the token the model finds least likely there: a batching bug, planted.'''

    def __init__(self, engine):
        self.engine, self.info, self.module, self.tokenizer = engine, engine.info, engine.module, engine.tokenizer

    def encode(self, text, chat):
        return self.engine.encode(text, chat)

    def window_log_probs(self, windows):
        return self.engine.window_log_probs(windows)

    def generate(self, batch, sampling):
        out = self.engine.generate(batch, sampling)
        if len(batch) > 1 and out[1].ok:
            ids = list(out[1].output_ids)
            [scores] = self.window_log_probs([[*batch[1].prompt_ids, *ids[:2], ids[2]]])
            ids[2] = int(scores[-1].argmin())
            out[1] = dataclasses.replace(out[1], output_ids=tuple(ids))
        return out


@pytest.fixture
def diverging(model):
    return Diverging(model)


@pytest.fixture
def workload_overrides():
    return {"count": 2, "output_tokens": 6}


@pytest.mark.parametrize("batching", ["static", "continuous"], indirect=True)
def test_batched(lab, model, workload, batching):
    record = lab.measure(model, workload, batching=batching, load="closed:2")
    assert record.exactness.state == "exact", record.exactness


def test_padded(lab, model, workload):
    assert lab.measure(model, workload, batch_size=2).exactness.lossless


def test_diverging(lab, diverging, workload):
    lab.measure(diverging, workload, batch_size=2)
"""


def test_batching_is_checked_against_sequential_decoding_and_a_planted_divergence_fails(pytester):
    pytester.makepyfile(test_suite=DIVERGING)
    result = pytester.runpytest_inprocess(*ARGS)
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*padded batches of 2: output DIVERGED from sequential greedy decoding at request 1, "
                                 "token 2*not a near tie*", "*1 failed, 3 passed*"])
    by_test = {r["test_id"].split("::")[-1]: r for r in records(pytester)}
    assert by_test["test_diverging"]["conditions"]["exactness"]["padded batches of 2"]["state"] == "diverged"
    assert {name: r["conditions"]["exactness"] for name, r in by_test.items() if name != "test_diverging"} == {
        "test_batched[static]": {"static batching (max_batch=16)": {
            "state": "exact", "checked_requests": 2, "against": "sequential greedy decoding", "first_mismatch": None}},
        "test_batched[continuous]": {"continuous batching": {
            "state": "exact", "checked_requests": 2, "against": "sequential greedy decoding", "first_mismatch": None}},
        "test_padded": {"padded batches of 2": {
            "state": "exact", "checked_requests": 2, "against": "sequential greedy decoding", "first_mismatch": None}}}
