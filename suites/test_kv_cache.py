"""KV-cache configurations on the embedded model: speed, the cache's bytes (measured from the cache
objects) and greedy-token agreement with the dynamic cache, one record per configuration and
batch size. Configurations the device cannot run (offloading without CUDA, backends whose package
is missing) skip at collection with the reason."""

import dataclasses

import pytest

from pytest_inferlab.workloads import resolve_workload

CONFIGS = ["dynamic", "static", "static-compile", "fp8", "quanto-int4", "quanto-int2", "hqq-int4", "offloaded"]


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("kv_cache", CONFIGS, indirect=True)
def test_kv_cache(lab, kv_model, workload, kv_cache, batch_size):
    record = lab.measure(kv_model, workload, batch_size=batch_size)
    assert record.measurements["kv_bytes_per_token"].value > 0
    if kv_cache.kind == "static":  # lossless, same kernels: the same greedy tokens
        assert record.measurements["kv_token_agreement"].value == 1.0


# Peak memory and KV bytes against context length: one synthetic request per case, prompt lengths
# that make the cache visible beside the weights (46 KB/token: 2,048 tokens hold ~90 MiB in fp32).
CONTEXT_TOKENS = [256, 1024, 2048]


@pytest.mark.parametrize("prompt_tokens", CONTEXT_TOKENS)
@pytest.mark.parametrize("kv_cache", ["dynamic", "fp8"], indirect=True)
def test_context_sweep(lab, kv_model, kv_cache, prompt_tokens):
    workload = dataclasses.replace(resolve_workload("synthetic"), count=1, output_tokens=16, input_tokens=prompt_tokens)
    record = lab.measure(kv_model, workload)
    positions = prompt_tokens + 16 - 1
    assert record.measurements["kv_cache_bytes"].value >= positions * record.measurements["kv_bytes_per_token"].value * 0.99
