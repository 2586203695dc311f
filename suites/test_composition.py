"""Optimizations stacked as a user would stack them: a quantized target drafted by prompt lookup, a
quantized KV cache with prompt lookup, a quantized draft for a quantized target. Each case measures
the composition against the plain model round by round (``reference=model``): its
``speedup_vs_reference`` is the combined effect, beside the drafting's own ``speculative_speedup``
over the same target undrafted. The findings table and the run's report show both."""

import pytest

from pytest_inferlab import SpeculativeSpec

PROMPT_LOOKUP = SpeculativeSpec.of("prompt-lookup", num_tokens=10, max_ngram=2)
INT8_DRAFT = SpeculativeSpec.of("draft", layers=6, quant="int8-weight", num_tokens=4)


@pytest.fixture
def workload_overrides(inferlab_device):
    """One request of 64 new tokens on CPU (each round runs three arms: drafted, undrafted, the model)."""
    return {"count": 1, "output_tokens": 64} if inferlab_device.kind == "cpu" else {}


@pytest.mark.inferlab(rounds=3, warmup=1)
@pytest.mark.parametrize("workload", ["copy-edit"], indirect=True)
@pytest.mark.parametrize("speculative", [PROMPT_LOOKUP, INT8_DRAFT], indirect=True, ids=["prompt-lookup", "int8-draft"])
@pytest.mark.parametrize("quantization", ["gptq"], indirect=True)
def test_quantized_target_drafted(lab, model, quantized_model, speculative_model, workload):
    record = lab.measure(speculative_model, workload, reference=model)
    assert record.exactness.lossless  # exact, or equal up to a near tie
    assert record["speedup_vs_reference"] > 0


@pytest.mark.inferlab(rounds=3, warmup=1)
@pytest.mark.parametrize("workload", ["copy-edit"], indirect=True)
@pytest.mark.parametrize("speculative", [PROMPT_LOOKUP], indirect=True, ids=["prompt-lookup"])
@pytest.mark.parametrize("kv_cache", ["fp8"], indirect=True)
def test_quantized_cache_drafted(lab, model, kv_model, speculative_model, workload):
    record = lab.measure(speculative_model, workload, reference=model)
    assert record["kv_bytes_per_token"] > 0
    assert record["speedup_vs_reference"] > 0
