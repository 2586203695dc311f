"""Quantized variants through the fixtures: records with fidelity, collection-time skips and errors."""

import json

import pytest

ARGS = ("--inferlab-model=dummy:tiny", "--inferlab-rounds=1", "--inferlab-threads=1", "-p", "no:cacheprovider", "-rs")

CONFTEST = """
from dataclasses import dataclass
from pytest_inferlab.optimizations.quant import quant_methods

@dataclass(frozen=True)
class NeedsAccelerator:
    def unsupported(self, device):
        return None if device.is_cuda else "needs a CUDA device (fp8 kernels)"
    def apply(self, reference, spec, device, tokenizer=None):
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


@pytest.mark.slow
def test_variants_are_recorded_with_fidelity_and_impossible_ones_skip_at_collection(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess(*ARGS)
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
    result = pytester.runpytest_inprocess(*ARGS)
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*int8-wieght*int8-weight*"])


GPU_ONLY = """
import pytest

@pytest.mark.parametrize("quantization", ["awq", "bnb-nf4", "fp8-weight", "gguf"], indirect=True)
def test_variant(lab, quantized_model, workload, quantization):
    raise AssertionError("never runs on this CPU with a dummy model")
"""


def test_gpu_methods_and_gguf_on_a_non_gguf_model_skip_at_collection_with_the_reason(pytester):
    pytester.makepyfile(test_suite=GPU_ONLY)
    result = pytester.runpytest_inprocess(*ARGS)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines_random([
        "*SKIPPED*awq on cpu: AWQ runs on CUDA devices only here*",
        "*SKIPPED*bnb-nf4 on cpu: bitsandbytes kernels run on CUDA devices only here*",
        "*SKIPPED*fp8-weight on cpu: float8 matmuls need a CUDA GPU with compute capability >= 8.9*",
        "*SKIPPED*gguf with model dummy:tiny: the model is not a GGUF file*",
        "*4 skipped*",
    ])


PLANTED = """
import pytest
import torch

@pytest.fixture(autouse=True)
def overflow_in_fp16(inferlab_session):
    reference = inferlab_session.engines.engine_for(inferlab_session.settings.model).module
    with torch.no_grad():
        reference.model.layers[1].mlp.up_proj.weight[0, 0] = 1e6  # finite in fp32, inf in fp16
"""

EVAL_SUITE = """
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 2, "output_tokens": 4}

@pytest.mark.parametrize("quantization", ["fp32", "fp16", "bf16"], indirect=True)
def test_variant(lab, quantized_model, workload, quantization):
    lab.measure(quantized_model, workload, evals=("inferlab_mc",))
"""


@pytest.mark.slow  # lm-eval over every variant (~70 s here)
def test_task_accuracy_joins_the_record_and_is_judged_item_by_item_and_a_broken_variant_fails_alone(pytester):
    pytester.makeconftest(PLANTED)
    pytester.makepyfile(test_suite=EVAL_SUITE)
    args = (*ARGS, "--inferlab-eval-limit=6")
    # invalid runs never enter a history; the host's other load must not void the one saved here
    saved = pytester.runpytest_inprocess(*args, "--inferlab-save-baseline", "--inferlab-max-interference=0.99")
    assert saved.ret == 1, saved.stdout.str()  # the fp16 case errors in its fixture; fp32 and bf16 still run
    saved.stdout.fnmatch_lines_random([
        "*fp16*produced NaN/inf weights in model.layers.1.mlp.up_proj.weight*",
        "*2 passed, 1 error*",
        "*inferlab quantization trade-off*",
        "plot: *pareto.png",
    ])
    records = [json.loads(p.read_text()) for p in (pytester.path / ".inferlab" / "runs").rglob("*.json")]
    by_method = {r["params"]["quantization"]: r for r in records}
    assert set(by_method) == {"fp32", "bf16"}
    fp32 = by_method["fp32"]
    assert len(fp32["evals"]["inferlab_mc"]["items"]) == 6 and fp32["evals"]["inferlab_mc"]["limit"] == 6
    accuracy = fp32["measurements"]["inferlab_mc.acc"]["value"]
    assert accuracy == sum(fp32["evals"]["inferlab_mc"]["items"]) / 6
    assert fp32["measurements"]["decode_gb_per_s"]["value"] > 0
    assert 0 < fp32["measurements"]["decode_bw_fraction"]["value"] < 5
    [png] = (pytester.path / ".inferlab" / "runs").rglob("pareto.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = pytester.runpytest_inprocess(*args, "--inferlab-no-gate")
    again.stdout.fnmatch_lines(["*inferlab verdicts*"])
    verdicts = [v for p in sorted((pytester.path / ".inferlab" / "runs").iterdir())[-1].glob("*.json")
                for v in json.loads(p.read_text())["verdicts"] if v["metric"] == "inferlab_mc.items"]
    assert len(verdicts) == 2 and all(v["outcome"] == "unchanged" for v in verdicts)
    assert all("0 items lost, 0 gained of 6" in v["reason"] for v in verdicts)
