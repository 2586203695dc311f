"""What a suite reads like: readable ids for spec parameters, ``record["metric"]``,
``WorkloadSpec.of``, and an SLO given twice that is said, never silent."""

import pytest

from pytest_inferlab import SLO, KVCacheSpec, LoadSpec, ModelSpec, ParallelSpec, WorkloadSpec
from pytest_inferlab.record.record import Record
from pytest_inferlab.specs.labels import spec_label

SUITE = """
import pytest
from pytest_inferlab import SLO, KVCacheSpec, LoadSpec, WorkloadSpec

@pytest.mark.parametrize("kv_cache", [KVCacheSpec.of("static"), KVCacheSpec.of("paged", page_size=16)], indirect=True)
@pytest.mark.parametrize("load", [LoadSpec.closed(2)], indirect=True)
def test_ids(kv_cache, load):
    pass

@pytest.mark.inferlab(slo={"ttft_ms": 100000})
def test_slo_twice(lab, model):
    workload = WorkloadSpec.of("short-chat", count=2, output_tokens=4)
    record = lab.measure(model, workload, slo=SLO(ttft_ms=50000), batching="static", load="closed:2")
    assert record["output_tok_per_s"] > 0 and "tpot_ms" in record
    assert record.conditions["slo"] == {"bounds": {"ttft_ms": 50000.0}, "source": "measure(slo=...)",
                                        "overridden": "@pytest.mark.inferlab(slo=...)"}
    with pytest.raises(KeyError, match="energy_j was not measured in .*test_slo_twice: "):
        record["energy_j"]
"""


def test_a_suite_reads_and_reports_plainly(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess("--inferlab-model=dummy:tiny", "--inferlab-rounds=1", "-p", "no:cacheprovider",
                                           "-v", "-W", "default::pytest.PytestWarning")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_ids[[]closed:2-static[]] PASSED*", "*test_ids[[]closed:2-paged-page_size=16[]] PASSED*",
                                 "*InferlabWarning*the SLO of measure(slo=...) (ttft_ms<=50000) overrides the one of "
                                 "@pytest.mark.inferlab(slo=...)*"])


@pytest.mark.parametrize("value, label", [
    (KVCacheSpec.of("paged", page_size=16), "paged-page_size=16"), (LoadSpec.poisson(2.5), "poisson:2.5"),
    (ParallelSpec(2, 2), "tp2-pp2"), (ParallelSpec(), "tp1"), (ParallelSpec(pipeline=2), "pp2"),
    (ModelSpec("dummy:tiny", "dummy", "tiny"), "dummy:tiny"), (SLO(ttft_ms=200), "ttft_ms-200"), (3, None),
])
def test_spec_labels(value, label):
    assert spec_label(value) == label


def test_workload_of_names_what_does_not_fit():
    assert WorkloadSpec.of("synthetic", count=1, input_tokens=64).input_tokens == 64
    with pytest.raises(ValueError, match="workload 'synthetic': unknown field\\(s\\) \\['tokens'\\]; known: name, "):
        WorkloadSpec.of("synthetic", tokens=3)
    with pytest.raises(ValueError, match="count=0 \\(must be >= 1\\)"):
        WorkloadSpec.of("short-chat", count=0)


def test_a_record_reads_by_metric_name():
    from pytest_inferlab.measure.metrics import Measurement

    record = Record(run_id="r", test_id="t.py::x", params={}, spec={}, spec_id="a", measurements={
        "tpot_ms": Measurement("ms", 12.5)}, absent={"energy_j": "no energy counter on this machine"}, engine={},
        environment={}, machine_id="m", seed=0, started_at="", finished_at="", rounds=1, warmup_rounds=0)
    assert record["tpot_ms"] == 12.5 and "tpot_ms" in record and "energy_j" not in record
    with pytest.raises(KeyError, match="energy_j was not measured in t.py::x: no energy counter"):
        record["energy_j"]
    with pytest.raises(KeyError, match="ttft is not a metric of t.py::x; measured: tpot_ms"):
        record["ttft"]
