"""Real runs of small suites on a dummy model: records, table, pytest-benchmark JSON, failures."""

import json

import pytest

from pytest_inferlab.record.record import load_record, read_record

TINY = ("--inferlab-model=dummy:tiny", "--inferlab-rounds=2", "--inferlab-warmup=1", "-p", "no:cacheprovider")
TINY_PARAMS_BYTES = 3_268_928 * 4  # dummy:tiny has 3,268,928 float32 parameters

CONFTEST = """
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 2, "output_tokens": 8}

def pytest_inferlab_update_environment(config, environment):
    environment["image_tag"] = "ci-123"

from pytest_inferlab import Engine

class Corrupting(Engine):
    '''A real engine whose request 0 carries a token id outside the vocabulary: the model raises.'''
    def __init__(self, engine, every=False):
        self.engine, self.info, self.every = engine, engine.info, every
    def encode(self, text, chat):
        return self.engine.encode(text, chat)
    def generate(self, batch, sampling):
        import dataclasses
        bad = [dataclasses.replace(r, prompt_ids=r.prompt_ids + (10**9,)) if (self.every or r.index == 0) else r
               for r in batch]
        return self.engine.generate(bad, sampling)

@pytest.fixture
def corrupting(model):
    return Corrupting(model)

@pytest.fixture
def always_failing(model):
    return Corrupting(model, every=True)
"""

SUITE = """
import pytest

@pytest.mark.parametrize("batch_size", [1, 2])
def test_latency(lab, model, workload, batch_size):
    lab.measure(model, workload, batch_size=batch_size)

def test_partly_failing(lab, corrupting, workload):
    record = lab.measure(corrupting, workload)
    assert record.measurements["failed_requests"].value == 2  # request 0 in each of 2 rounds
"""


def records(pytester):
    runs = list((pytester.path / ".inferlab" / "runs").iterdir())
    assert len(runs) == 1, runs
    return {p.name: load_record(p) for p in runs[0].glob("*.json")}


def test_a_small_suite_writes_records_table_and_benchmark_json(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess(*TINY, "--benchmark-json=bench.json")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines([
        "*[[]inferlab[]] test_latency[[]1[]]: warm-up 1/3: 16 tok in *",
        "*[[]inferlab[]] test_latency[[]1[]]: round 3/3: 16 tok in *, done",
        "*= inferlab results =*",
        "case * model * TTFT ms * TPOT ms * out tok/s * peak MiB * note",
        "test_latency[[]1[]] * dummy:tiny *",
        "test_latency[[]2[]] * dummy:tiny *",
        "test_partly_failing * dummy:tiny * 2 failed",
        "records: */.inferlab/runs/*",
    ])
    assert result.stdout.str().count("loading dummy:tiny") == 1  # cached for the session, by spec
    found = records(pytester)
    assert len(found) == 3
    by_test = {r["test_id"]: (name, r) for name, r in found.items()}
    name, rec = by_test["test_suite.py::test_latency[1]"]
    assert name == f"test_suite.py_test_latency_1-{rec['spec_id']}.json"
    m = rec["measurements"]
    assert 0 < m["ttft_ms"]["value"] < 5_000 and 0 < m["tpot_ms"]["value"] < 1_000
    assert m["output_tok_per_s"]["value"] > 10 and len(m["output_tok_per_s"]["samples"]) == 2
    assert m["itl_ms"]["n"] == 2 * 2 * 7  # 2 rounds x 2 requests x 7 gaps
    assert m["model_bytes"]["value"] == TINY_PARAMS_BYTES
    assert m["peak_mem_bytes"]["value"] > TINY_PARAMS_BYTES
    assert m["failed_requests"]["value"] == 0
    assert rec["absent"]["goodput_req_per_s"] == "no SLO configured"
    assert "energy_j" in rec["absent"] and "energy_j" not in m
    assert rec["params"] == {"batch_size": 1}
    assert rec["spec"]["workload"]["count"] == 2 and rec["spec"]["batch_size"] == 1
    env = rec["environment"]
    assert env["image_tag"] == "ci-123" and env["threads"] >= 1 and env["libraries"]["torch"]
    assert rec["engine"]["facts"]["dummy_preset"] == "tiny" and rec["seed"] == 0
    assert len(rec["output_digest"]) == 12
    # the failing request's error is data in the record, and the others were measured
    _, partly = by_test["test_suite.py::test_partly_failing"]
    assert partly["measurements"]["failed_requests"]["value"] == 2
    assert partly["measurements"]["ttft_ms"]["n"] == 2  # request 1 in each round
    bench = json.loads((pytester.path / "bench.json").read_text())
    extra = {b["name"]: b["extra_info"]["inferlab"] for b in bench["benchmarks"]}
    assert extra["test_latency[2]"]["spec_id"] == by_test["test_suite.py::test_latency[2]"][1]["spec_id"]
    assert extra["test_latency[2]"]["metrics"]["output_tok_per_s"] > 0
    assert all(b["stats"]["rounds"] == 2 for b in bench["benchmarks"])
    # read back typed (what findings, compare, ab and the asv export take): the very record the lab wrote,
    # its spec rebuilt to the id it carries
    for path in (pytester.path / ".inferlab" / "runs").glob("*/*.json"):
        typed = read_record(path)
        assert typed.to_json() == load_record(path) and typed.run_spec.spec_id == typed.spec_id
        assert typed.value("output_tok_per_s") == typed["output_tok_per_s"] and typed.value("energy_j") is None


def test_a_case_whose_requests_all_fail_fails_alone_and_writes_no_record(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite="""
def test_broken(lab, always_failing, workload):
    lab.measure(always_failing, workload)

def test_fine(lab, model, workload):
    lab.measure(model, workload)
""")
    result = pytester.runpytest_inprocess(*TINY)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*every request failed; first error: IndexError*", "*1 failed, 1 passed*"])
    assert [r["test_id"] for r in records(pytester).values()] == ["test_suite.py::test_fine"]


def test_lab_measures_once_per_test(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite="""
def test_twice(lab, model, workload):
    lab.measure(model, workload)
    lab.measure(model, workload)
""")
    result = pytester.runpytest_inprocess(*TINY)
    result.stdout.fnmatch_lines(["*lab measures one case per test*parametrize the test instead*"])
    assert result.ret == 1


@pytest.mark.slow
def test_records_survive_xdist_workers(pytester):
    pytest.importorskip("xdist")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite="""
import pytest

@pytest.mark.parametrize("batch_size", [1, 2])
@pytest.mark.parametrize("workload", ["short-chat", "copy-edit"], indirect=True)
def test_latency(lab, model, workload, batch_size):
    lab.measure(model, workload, batch_size=batch_size)
""")
    result = pytester.runpytest_inprocess(*TINY, "-n", "2")
    assert result.ret == 0, result.stdout.str()
    found = records(pytester)  # one run folder shared by both workers
    assert len(found) == 4
    assert {r["environment"]["xdist_worker"] for r in found.values()} == {"gw0", "gw1"}
    assert all(r["conditions"]["benchmark_disabled"] for r in found.values())
    assert all(r["measurements"]["output_tok_per_s"]["n"] == 2 for r in found.values())
    result.stdout.fnmatch_lines(["*= inferlab results =*", "test_latency[[]*", "test_latency[[]*",
                                 "test_latency[[]*", "test_latency[[]*"])


def test_self_measurement_records_both_overhead_figures(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite="""
import pytest

@pytest.mark.inferlab(rounds=3, warmup=0)
def test_overhead(lab, model, workload):
    lab.measure_overhead(model, workload)
""")
    result = pytester.runpytest_inprocess(TINY[0], "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()  # no --inferlab-rounds/-warmup: the marker's 3 pairs, no warm-up
    result.stdout.fnmatch_lines(["*pair 3/3 recorded * tok/s, bare * tok/s*",
                                 "test_overhead * dummy:tiny *↓", "  ↳ overhead *%, harness cost *%"])
    [rec] = records(pytester).values()
    m = rec["measurements"]
    assert rec["spec"]["measure"] == "overhead"
    assert m["harness_overhead_pct"]["n"] == 3 and len(m["bare_output_tok_per_s"]["samples"]) == 3
    low, high = m["harness_overhead_pct"]["ci95"]
    assert low <= m["harness_overhead_pct"]["value"] <= high
    per_token_us, per_request_us = m["harness_cost_pct"]["samples"]
    assert 0 < per_token_us < per_request_us  # a put() is cheaper than preparing a request
    assert m["harness_cost_pct"]["value"] > 0


@pytest.mark.slow
def test_a_run_ends_with_its_findings_a_finished_manifest_and_a_report(pytester):
    """The run as a newcomer sees it: the findings section last, a manifest that says finished, a
    report beside the records; a composition (int8 target drafted by prompt lookup) against the
    plain model, with the drafting's own speedup beside it."""
    pytester.makepyfile(test_suite="""
import pytest
from pytest_inferlab import SpeculativeSpec

@pytest.fixture
def workload_overrides():
    return {"count": 1, "output_tokens": 8}

def test_plain(lab, model, workload):
    lab.measure(model, workload)

@pytest.mark.parametrize("quantization", ["int8-weight"], indirect=True)
def test_variant(lab, model, quantized_model, workload):
    lab.measure(quantized_model, workload, reference=model)

@pytest.mark.parametrize("speculative", [SpeculativeSpec.of("prompt-lookup", num_tokens=4)], indirect=True, ids=["pl"])
@pytest.mark.parametrize("quantization", ["int8-weight"], indirect=True)
def test_composed(lab, model, quantized_model, speculative_model, workload):
    lab.measure(speculative_model, workload, reference=model)
""")
    result = pytester.runpytest_inprocess(*TINY, "--inferlab-rounds=3")  # an interval needs 3 pairs
    assert result.ret == 0, result.stdout.str()
    out = result.stdout.str()
    assert out.index("inferlab findings") > out.index("inferlab results")
    result.stdout.fnmatch_lines(["*inferlab findings*", "family * optimization * tok/s*",
                                 "quantization*int8-weight on short-chat*[[]*", "composition*int8-weight + prompt-lookup*[[]*",
                                 "report: */report.html"])
    run = next((pytester.path / ".inferlab" / "runs").iterdir())
    manifest = json.loads((run / "inferlab-run.manifest").read_text())
    assert manifest["status"] == "finished" and manifest["exit_status"] == 0
    assert len(list(run.glob("*.json"))) == 3
    page = (run / "report.html").read_text()
    assert "int8-weight + prompt-lookup" in page and "<h2>What was found</h2>" in page
    composed = next(load_record(p) for p in run.glob("*test_composed*.json"))
    assert composed["measurements"]["speedup_vs_reference"]["ci95"]
    assert composed["measurements"]["speculative_speedup"]["value"] > 0
