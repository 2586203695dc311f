"""KV-cache configurations on a real (dummy-weight) transformers model: bytes measured from the
cache objects, generation arguments, skip reasons, token agreement."""

from __future__ import annotations

import pytest

from pytest_inferlab.device import CPU, Device
from pytest_inferlab.engines import load_engine
from pytest_inferlab.optimizations.kv import KVCacheSpec, generation_kwargs, kv_caches, resolve_kv, token_agreement, unsupported_kv_reason
from pytest_inferlab.registry import UnknownNameError
from pytest_inferlab.engines.sources import resolve_model
from pytest_inferlab.specs.core import RunSpec, SamplingSpec, spec_dict, stable_id
from pytest_inferlab.run.workloads import resolve_workload
from pytest_inferlab.run.trace import Request

# dummy:tiny: 2 layers, 2 KV heads of 64/4 = 16 dims, fp32: keys + values per token
TINY_KV_BYTES_PER_TOKEN = 2 * 2 * 2 * 16 * 4


@pytest.fixture(scope="module")
def tiny():
    return load_engine("transformers", resolve_model("dummy:tiny"), CPU)


def _requests(n: int, prompt: int = 12, new: int = 20) -> list[Request]:
    return [Request(i, tuple(range(10 + i, 10 + i + prompt)), new, True) for i in range(n)]


@pytest.mark.parametrize("kind, per_token", [("dynamic", 1.0), ("static", 1.0), ("fp8", 0.25)])
def test_cache_bytes_come_from_the_cache_objects(tiny, kind, per_token):
    engine = tiny.with_kv_cache(KVCacheSpec.of(kind))
    traces = engine.generate(_requests(2), SamplingSpec())
    assert all(t.ok for t in traces), traces[0].error
    usage = engine.last_kv
    assert usage.rows == 2 and usage.positions == 12 + 20 - 1  # the last token is never fed back
    assert usage.bytes_per_token == pytest.approx(TINY_KV_BYTES_PER_TOKEN * per_token, rel=0.02)
    assert engine.info.facts["kv_cache"] == {"kind": kind, "settings": {}} and tiny.info.kv_cache is None


def test_lossless_static_cache_gives_the_dynamic_cache_tokens(tiny):
    dynamic = {t.index: t.output_ids for t in tiny.generate(_requests(2), SamplingSpec())}
    static = {t.index: t.output_ids for t in tiny.with_kv_cache(KVCacheSpec.of("static")).generate(_requests(2), SamplingSpec())}
    assert token_agreement(dynamic, static) == 1.0
    assert token_agreement({0: (1, 2, 3, 4)}, {0: (1, 2, 9, 4, 5)}) == 0.75
    assert token_agreement({}, {0: (1,)}) is None


def test_decode_kld_is_zero_for_a_lossless_cache_and_positive_for_fp8(tiny):
    from pytest_inferlab.optimizations.kv.fidelity import kv_decode_kld

    prompt = tuple(range(100, 140))
    # the floor: incremental fp32 decoding vs one full forward differ only by rounding (~1e-7 here;
    # dummy weights give near-flat distributions, so every KL on this model is small)
    floor = kv_decode_kld(tiny.with_kv_cache(KVCacheSpec.of("dynamic")), prompt, 16)
    static = kv_decode_kld(tiny.with_kv_cache(KVCacheSpec.of("static")), prompt, 16)
    fp8 = kv_decode_kld(tiny.with_kv_cache(KVCacheSpec.of("fp8")), prompt, 16)
    assert 0 <= floor < 1e-6 and 0 <= static < 1e-6
    assert fp8 > 3 * max(floor, static)


def test_registry_arguments_and_reasons():
    assert {"dynamic", "static", "static-compile", "fp8", "quanto-int4", "hqq-int4", "offloaded"} <= set(kv_caches.names())
    with pytest.raises(UnknownNameError, match="static"):
        resolve_kv("statik")
    assert generation_kwargs(None, CPU) == {}
    assert generation_kwargs(KVCacheSpec.of("fp8"), CPU) == {"cache_implementation": "quantized",
                                                             "cache_config": {"backend": "fp8"}}
    assert generation_kwargs(KVCacheSpec.of("quanto-int4", residual_length=32), CPU)["cache_config"] == {
        "backend": "quanto", "nbits": 4, "residual_length": 32}
    assert generation_kwargs(KVCacheSpec.of("static-compile"), CPU)["compile_config"]._compile_all_devices
    assert "CUDA devices only" in unsupported_kv_reason(KVCacheSpec.of("offloaded"), CPU)
    assert unsupported_kv_reason(KVCacheSpec.of("offloaded"), Device("cuda", 0)) is None
    assert unsupported_kv_reason(KVCacheSpec.of("static"), CPU) is None
    quanto = unsupported_kv_reason(KVCacheSpec.of("quanto-int2"), CPU)
    assert quanto is None or "pip install optimum-quanto" in quanto


def test_a_cache_configuration_changes_the_spec_id_and_none_keeps_the_old_one():
    workload = resolve_workload("short-chat")
    model = resolve_model("dummy:tiny")
    plain = RunSpec(model, workload)
    before = spec_dict(plain)  # the payload as it was before cache, batching and load specs existed
    for later in ("kv_cache", "batching", "load", "speculative"):
        del before[later]
    before["model"] = {"spec_id": model.spec_id}
    assert plain.spec_id == stable_id(before)  # baselines saved earlier keep matching
    assert RunSpec(model, workload, kv_cache=KVCacheSpec.of("static")).spec_id != plain.spec_id
    assert RunSpec(model, workload, kv_cache=KVCacheSpec.of("static")).spec_id != \
        RunSpec(model, workload, kv_cache=KVCacheSpec.of("fp8")).spec_id
