"""KV-cache configurations on the embedded model: speed, the cache's bytes (measured from the cache
objects) and greedy-token agreement with the dynamic cache, one record per configuration and
batch size. Configurations the device cannot run (offloading without CUDA, backends whose package
is missing) skip at collection with the reason."""

import pytest

CONFIGS = ["dynamic", "static", "static-compile", "fp8", "quanto-int4", "quanto-int2", "hqq-int4", "offloaded"]


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("kv_cache", CONFIGS, indirect=True)
def test_kv_cache(lab, kv_model, workload, kv_cache, batch_size):
    record = lab.measure(kv_model, workload, batch_size=batch_size)
    assert record.measurements["kv_bytes_per_token"].value > 0
    if kv_cache.kind == "static":  # lossless, same kernels: the same greedy tokens
        assert record.measurements["kv_token_agreement"].value == 1.0
