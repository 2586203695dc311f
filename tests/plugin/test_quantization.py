"""Quantized variants through the fixtures: records with fidelity, collection-time skips and errors."""

import json

ARGS = ("--inferlab-model=dummy:tiny", "--inferlab-rounds=1", "--inferlab-threads=1", "-p", "no:cacheprovider", "-rs")

CONFTEST = """
from dataclasses import dataclass
from pytest_inferlab.quant import quant_methods

@dataclass(frozen=True)
class NeedsAccelerator:
    def unsupported(self, device):
        return None if device.is_cuda else "needs a CUDA device (fp8 kernels)"
    def apply(self, reference, spec, device):
        raise AssertionError("never applied on CPU")

quant_methods.register("fp8-test", NeedsAccelerator())
"""

SUITE = """
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 1, "output_tokens": 4}

@pytest.mark.parametrize("quantization", ["fp32", "int8-weight", "fp8-test"], indirect=True)
def test_variant(lab, quantized_model, workload, quantization):
    lab.measure(quantized_model, workload)
"""


def test_variants_are_recorded_with_fidelity_and_impossible_ones_skip_at_collection(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(*ARGS)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*SKIPPED*fp8-test on cpu: needs a CUDA device (fp8 kernels)*", "*2 passed, 1 skipped*"])
    records = {json.loads(p.read_text())["params"]["quantization"]: json.loads(p.read_text())
               for p in (pytester.path / ".inferlab" / "runs").rglob("*.json")}
    assert set(records) == {"fp32", "int8-weight"}
    fp32, int8 = records["fp32"], records["int8-weight"]
    assert fp32["measurements"]["kld_mean"]["value"] == 0.0
    assert int8["measurements"]["kld_mean"]["value"] > 0 and int8["measurements"]["top1_agreement"]["value"] > 0.5
    assert int8["engine"]["facts"]["quantization"]["method"] == "int8-weight"
    assert int8["engine"]["model_bytes"] < fp32["engine"]["model_bytes"]
    assert int8["spec_id"] != fp32["spec_id"]


def test_an_unknown_method_is_a_usage_error_with_did_you_mean(pytester):
    pytester.makepyfile(test_suite=SUITE.replace('"fp8-test"', '"int8-wieght"'))
    result = pytester.runpytest_subprocess(*ARGS)
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*int8-wieght*int8-weight*"])
