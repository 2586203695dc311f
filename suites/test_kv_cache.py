"""KV-cache configurations on the embedded model: speed (paired round by round with the model's own
dynamic cache, ``reference=model``: a ratio with its 95% interval), the cache's bytes (measured from
the cache objects) and greedy-token agreement with the dynamic cache, one record per configuration
and batch size. Configurations the device cannot run (offloading without CUDA, backends whose package
is missing) skip at collection with the reason."""

import pytest

from pytest_inferlab import KVCacheSpec, WorkloadSpec

CONFIGS = ["dynamic", "static", "static-compile", "fp8", "quanto-int4", "quanto-int2", "hqq-int4", "offloaded"]


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("kv_cache", CONFIGS, indirect=True)
def test_kv_cache(lab, model, kv_model, workload, kv_cache, batch_size):
    record = lab.measure(kv_model, workload, batch_size=batch_size, reference=model)
    assert record["kv_bytes_per_token"] > 0
    if kv_cache.kind == "static":  # lossless, same kernels: the same greedy tokens
        assert record["kv_token_agreement"] == 1.0


# Peak memory and KV bytes against context length: one synthetic request per case, prompt lengths
# that make the cache visible beside the weights (46 KB/token: 2,048 tokens hold ~90 MiB in fp32).
CONTEXT_TOKENS = [256, 1024, 2048]


@pytest.mark.parametrize("prompt_tokens", CONTEXT_TOKENS)
@pytest.mark.parametrize("kv_cache", ["dynamic", "fp8"], indirect=True)
def test_context_sweep(lab, kv_model, kv_cache, prompt_tokens):
    workload = WorkloadSpec.of("synthetic", count=1, output_tokens=16, input_tokens=prompt_tokens)
    record = lab.measure(kv_model, workload)
    positions = prompt_tokens + 16 - 1
    assert record["kv_cache_bytes"] >= positions * record["kv_bytes_per_token"] * 0.99


# The same sweep on a dummy shape whose KV is large for its weights (128 KiB/token, 168M parameters):
# at 2,048 tokens the cache is ~40% of the weights' bytes, so its growth and fp8's saving show in
# peak memory. One timed round: this is about memory, not speed.
@pytest.mark.inferlab(rounds=1, warmup=1)
@pytest.mark.parametrize("prompt_tokens", [512, 2048])
@pytest.mark.parametrize("kv_cache", ["dynamic", "fp8"], indirect=True)
@pytest.mark.parametrize("model", ["dummy:kv-heavy"], indirect=True)
def test_context_sweep_kv_heavy(lab, kv_model, kv_cache, prompt_tokens):
    workload = WorkloadSpec.of("synthetic", count=1, output_tokens=8, input_tokens=prompt_tokens)
    record = lab.measure(kv_model, workload)
    if kv_cache.kind == "dynamic":
        assert record["kv_bytes_per_token"] == 131072  # 16 layers x K,V x 1024 x 4 B


# A sliding-window cache keeps the last window of keys: on a model with 512-token sliding-window
# attention its bytes stop growing at the window (transformers' dynamic cache slides there too); on
# a model with full attention the configuration is refused and the dynamic cache holds every token.
@pytest.mark.inferlab(rounds=1, warmup=1)
@pytest.mark.parametrize("kv_cache", ["dynamic", "sliding-window"], indirect=True)
@pytest.mark.parametrize("model", ["dummy:kv-heavy-sw", "smollm2-135m"], indirect=True)
def test_sliding_window(lab, kv_model, kv_cache):
    workload = WorkloadSpec.of("synthetic", count=1, output_tokens=8, input_tokens=2048)
    record = lab.measure(kv_model, workload)
    per_token = record["kv_cache_bytes"] / (2048 + 8 - 1)
    if getattr(kv_model.module.config, "sliding_window", None):  # at most the window's keys, not 2,055 tokens' worth
        assert record["kv_cache_bytes"] <= 512 * 131072 * 1.01
    else:
        assert per_token == record["kv_bytes_per_token"]


# Continuous batching's paged cache, by page size: bytes of the bounded pool and its tokens.
@pytest.mark.inferlab(rounds=1, warmup=1)
@pytest.mark.parametrize("kv_cache", [KVCacheSpec.of("paged", page_size=16), KVCacheSpec.of("paged", page_size=64)],
                         indirect=True, ids=["paged-16", "paged-64"])
def test_paged(lab, kv_model, workload, kv_cache):
    record = lab.measure(kv_model, workload, batching="continuous", load="closed:4")
    assert record["kv_token_agreement"] >= 0.9
