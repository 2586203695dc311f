"""The GGUF quantization ladder, made by llama.cpp's own quantizer and run by llama.cpp.

Each rung (F32 down to Q2_K) is made from the embedded model's file (Q4_1, so every rung carries
the requantization warning: its fidelity is bounded by the source's) and measured against the
plain model on transformers fp32 in the same rounds: ``speedup_vs_reference`` is what switching
runtime and rung buys on this machine, beside the rung's bytes, KLD and top-1 agreement from
llama.cpp's own logits and lm-eval accuracy scored by llama.cpp. Run it with
suites/test_quantization.py to put the rungs in one trade-off table with torchao and GPTQ.

Speculative decoding on llama.cpp: prompt lookup and a lower rung as draft model for the F32 rung,
each paired round by round with the same rung decoding alone (speedup, acceptance, exactness).
Skips with the install command where llama-cpp-python is missing."""

import pytest

from pytest_inferlab import SpeculativeSpec

EVAL_TASKS = ("inferlab_mc", "inferlab_ppl")  # shipped with the project (pytest_inferlab/data/tasks)
LADDER = ["gguf-f32", "gguf-q8_0", "gguf-q6_k", "gguf-q5_k_m", "gguf-q4_k_m", "gguf-q4_0", "gguf-q3_k_m", "gguf-q2_k"]


@pytest.fixture
def workload_overrides(inferlab_device):
    """Two chat requests of 32 new tokens per round on CPU (llama.cpp runs them one at a time)."""
    return {"count": 2, "output_tokens": 32} if inferlab_device.kind == "cpu" else {}


@pytest.mark.inferlab(rounds=3, warmup=1)
@pytest.mark.parametrize("quantization", LADDER, indirect=True)
def test_gguf_ladder(lab, model, quantized_model, workload):
    record = lab.measure(quantized_model, workload, reference=model, evals=EVAL_TASKS)
    assert record["speedup_vs_reference"] > 0
    assert record["top1_agreement"] > 0
    assert 0 <= record["inferlab_mc.acc"] <= 1


DRAFTING = [SpeculativeSpec.of("prompt-lookup", num_tokens=10, max_ngram=2),
            SpeculativeSpec.of("draft", quant="gguf-q4_0", num_tokens=3)]


@pytest.mark.inferlab(rounds=2, warmup=1)
@pytest.mark.parametrize("workload", ["copy-edit", "short-chat"], indirect=True)
@pytest.mark.parametrize("speculative", DRAFTING, indirect=True, ids=["prompt-lookup", "draft-q4_0"])
@pytest.mark.parametrize("quantization", ["gguf-f32"], indirect=True)
def test_gguf_speculative(lab, quantized_model, speculative_model, workload, speculative):
    record = lab.measure(speculative_model, workload)
    assert record["tokens_per_target_forward"] >= 1.0
