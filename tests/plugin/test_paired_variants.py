"""An optimization measured against its reference in alternating rounds: measure(reference=...)."""

import json

ARGS = ("--inferlab-model=dummy:tiny", "--inferlab-threads=1", "-p", "no:cacheprovider", "-rs")

SUITE = """
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 1, "output_tokens": 6}

@pytest.mark.inferlab(rounds=4, warmup=1)
@pytest.mark.parametrize("quantization", ["fp32", "bf16"], indirect=True)
def test_variant(lab, model, quantized_model, workload, quantization):
    record = lab.measure(quantized_model, workload, reference=model)
    if quantization.method == "bf16":
        low, high = record.measurements["speedup_vs_reference"].ci95
        assert low <= record["speedup_vs_reference"] <= high

@pytest.mark.parametrize("quantization", ["bf16"], indirect=True)
def test_under_a_load_the_reference_is_refused(lab, model, quantized_model, workload):
    lab.measure(quantized_model, workload, batching="static", load="closed:1", reference=model)

def test_a_reference_must_be_an_engine(lab, model, workload):
    lab.measure(model, workload, reference="fp32")
"""


def test_a_variant_carries_its_paired_ratio_and_the_tradeoff_prints_its_interval(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess(*ARGS)
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*ValueError: measure(reference=...) pairs back-to-back batches round by round*"])
    result.stdout.fnmatch_lines(["*TypeError: measure(reference=...) takes an Engine to compare with (e.g. the model "
                                 "fixture), not str*"])
    result.stdout.fnmatch_lines(["*= inferlab quantization trade-off*", "bf16 * [[]*, *[]]*"])
    records = {json.loads(p.read_text())["params"]["quantization"]: json.loads(p.read_text())
               for p in (pytester.path / ".inferlab" / "runs").rglob("*.json")}
    bf16 = records["bf16"]
    compared = bf16["conditions"]["compared_to"]
    assert compared["reference"]["quant"] is None and compared["reference"]["model"] == "dummy:tiny"
    assert compared["ratios"]["tpot_ms"]["pairs"] == 4 and len(compared["ratios"]["tpot_ms"]["per_pair"]) == 4
    speedup = bf16["measurements"]["speedup_vs_reference"]
    assert speedup["ci95"][0] <= speedup["value"] <= speedup["ci95"][1] and speedup["n"] == 4
    assert len(bf16["round_values"]["tpot_ms"]) == 4
    # fp32 is a copy of the model: paired with it, an A/A comparison that shows the pairs' own noise
    assert 0.5 < records["fp32"]["measurements"]["speedup_vs_reference"]["value"] < 2


BATCHED = """
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 4, "output_tokens": 6}

@pytest.mark.inferlab(rounds=3, warmup=1)
def test_batched(lab, model, workload):
    record = lab.measure(model, workload, batch_size=4, reference=model, reference_batch_size=1)
    compared = record.conditions["compared_to"]
    assert compared["ratios"]["output_tok_per_s"]["pairs"] == 3
    assert record.measurements["speedup_vs_reference"].ci95 is not None
"""


def test_a_batch_size_is_measured_against_the_same_engine_one_request_at_a_time(pytester):
    pytester.makepyfile(test_suite=BATCHED)
    result = pytester.runpytest_inprocess(*ARGS)
    result.assert_outcomes(passed=1)
    record = next(json.loads(p.read_text()) for p in (pytester.path / ".inferlab" / "runs").rglob("test_suite*.json"))
    assert record["spec"]["batch_size"] == 4  # the case's own batches; the reference's one request at a time
    assert record["measurements"]["speedup_vs_reference"]["value"] > 1  # four requests a forward pass beat one
