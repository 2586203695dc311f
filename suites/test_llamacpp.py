"""The GGUF quantization ladder, made by llama.cpp's own quantizer and run by llama.cpp.

Each rung (F32 down to Q2_K) is made from the embedded model's file (Q4_1, so every rung carries
the requantization warning: its fidelity is bounded by the source's) and measured against the
plain model on transformers fp32 in the same rounds: ``speedup_vs_reference`` is what switching
runtime and rung buys on this machine, beside the rung's bytes, KLD and top-1 agreement from
llama.cpp's own logits. Skips with the install command where llama-cpp-python is missing."""

import pytest

LADDER = ["gguf-f32", "gguf-q8_0", "gguf-q6_k", "gguf-q5_k_m", "gguf-q4_k_m", "gguf-q4_0", "gguf-q3_k_m", "gguf-q2_k"]


@pytest.fixture
def workload_overrides(inferlab_device):
    """Two chat requests of 32 new tokens per round on CPU (llama.cpp runs them one at a time)."""
    return {"count": 2, "output_tokens": 32} if inferlab_device.kind == "cpu" else {}


@pytest.mark.inferlab(rounds=3, warmup=1)
@pytest.mark.parametrize("quantization", LADDER, indirect=True)
def test_gguf_ladder(lab, model, quantized_model, workload):
    record = lab.measure(quantized_model, workload, reference=model)
    assert record["speedup_vs_reference"] > 0
    assert record["top1_agreement"] > 0
