"""Parallel layouts of the embedded model. On CPU, tensor parallel over torch.distributed (gloo)
processes through transformers' plan (SmolLM2-135M has 9 attention heads and 3 key-value heads:
a 3-way split runs, a 2-way one skips with the reason); on GPU the same layouts run in vLLM
(``vllm_model``, skipping where vLLM or the GPUs are missing)."""

import pytest


@pytest.fixture
def workload_overrides(inferlab_device):
    return {"count": 2, "output_tokens": 16} if inferlab_device.kind == "cpu" else {}


@pytest.mark.inferlab(rounds=1, warmup=1)
@pytest.mark.parametrize("parallel", ["tp2", "tp3"], indirect=True)
def test_tensor_parallel_cpu(lab, tp_model, workload, parallel):
    record = lab.measure(tp_model, workload)
    assert len(record.conditions["parallel"]["peak_rss_bytes_per_rank"]) == parallel.tensor


@pytest.mark.parametrize("parallel", ["tp1", "tp2", "tp2-pp2"], indirect=True)
def test_vllm_layouts(lab, vllm_model, workload, parallel):
    lab.measure(vllm_model, workload, batch_size=4)
