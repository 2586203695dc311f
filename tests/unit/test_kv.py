"""KV-cache configurations on a real (dummy-weight) transformers model: bytes measured from the
cache objects, generation arguments, skip reasons, token agreement."""

from __future__ import annotations

import pytest

from pytest_inferlab.device import CPU, Device
from pytest_inferlab.engines import load_engine
from pytest_inferlab.optimizations.kv import (KVCacheSpec, fresh_cache, generation_kwargs, kv_caches, resolve_kv,
                                             token_agreement, unsupported_kv_reason)
from pytest_inferlab.registry import UnknownNameError
from pytest_inferlab.engines.sources import resolve_model
from pytest_inferlab.specs.core import RunSpec, SamplingSpec, WorkloadSpec, spec_dict, stable_id
from pytest_inferlab.specs.workloads import resolve_workload
from pytest_inferlab.ground.trace import Request

# dummy:tiny: 2 layers, 2 KV heads of 64/4 = 16 dims, fp32: keys + values per token
TINY_KV_BYTES_PER_TOKEN = 2 * 2 * 2 * 16 * 4


@pytest.fixture(scope="module")
def tiny():
    return load_engine("transformers", resolve_model("dummy:tiny"), CPU)



def with_cache(engine, kind):
    """``engine`` generating with the cache configuration ``kind``, as the kv_model fixture hands it over."""
    return engine.with_kv_cache(KVCacheSpec.of(kind), kv_caches.get(kind))

def _requests(n: int, prompt: int = 12, new: int = 20) -> list[Request]:
    return [Request(i, tuple(range(10 + i, 10 + i + prompt)), new, True) for i in range(n)]


@pytest.mark.parametrize("kind, per_token", [("dynamic", 1.0), ("static", 1.0), ("fp8", 0.25)])
def test_cache_bytes_come_from_the_cache_objects(tiny, kind, per_token):
    engine = with_cache(tiny, kind)
    traces = engine.generate(_requests(2), SamplingSpec())
    assert all(t.ok for t in traces), traces[0].error
    usage = engine.last_kv
    assert usage.rows == 2 and usage.positions == 12 + 20 - 1  # the last token is never fed back
    assert usage.bytes_per_token == pytest.approx(TINY_KV_BYTES_PER_TOKEN * per_token, rel=0.02)
    assert engine.info.facts["kv_cache"] == {"kind": kind, "settings": {}} and tiny.info.kv_cache is None


def test_lossless_static_cache_gives_the_dynamic_cache_tokens(tiny):
    dynamic = {t.index: t.output_ids for t in tiny.generate(_requests(2), SamplingSpec())}
    static = {t.index: t.output_ids for t in with_cache(tiny, "static").generate(_requests(2), SamplingSpec())}
    assert token_agreement(dynamic, static) == 1.0
    assert token_agreement({0: (1, 2, 3, 4)}, {0: (1, 2, 9, 4, 5)}) == 0.75
    assert token_agreement({}, {0: (1,)}) is None


def test_decode_kld_is_zero_for_a_lossless_cache_and_positive_for_fp8(tiny):
    from pytest_inferlab.optimizations.kv.fidelity import kv_decode_kld

    prompt = tuple(range(100, 140))
    # the floor: incremental fp32 decoding vs one full forward differ only by rounding (~1e-7 here;
    # dummy weights give near-flat distributions, so every KL on this model is small)
    floor = kv_decode_kld(with_cache(tiny, "dynamic"), prompt, 16)
    static = kv_decode_kld(with_cache(tiny, "static"), prompt, 16)
    fp8 = kv_decode_kld(with_cache(tiny, "fp8"), prompt, 16)
    assert 0 <= floor < 1e-6 and 0 <= static < 1e-6
    assert fp8 > 3 * max(floor, static)


def test_registry_arguments_and_reasons():
    assert {"dynamic", "static", "static-compile", "fp8", "quanto-int4", "hqq-int4", "offloaded"} <= set(kv_caches.names())
    with pytest.raises(UnknownNameError, match="static"):
        resolve_kv("statik")
    assert generation_kwargs(None, CPU) == {}
    assert generation_kwargs(KVCacheSpec.of("fp8"), CPU) == {}  # the engine passes the cache object (fresh_cache)
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
    for later in WorkloadSpec.TRAFFIC_FIELDS:  # realistic traffic came later too
        del before["workload"][later]
    assert plain.spec_id == stable_id(before)  # baselines saved earlier keep matching
    assert RunSpec(model, workload, kv_cache=KVCacheSpec.of("static")).spec_id != plain.spec_id
    assert RunSpec(model, workload, kv_cache=KVCacheSpec.of("static")).spec_id != \
        RunSpec(model, workload, kv_cache=KVCacheSpec.of("fp8")).spec_id


def test_the_fp8_cache_crops_back_to_the_states_it_held_and_drafting_on_it_is_exact(tiny):
    import torch

    config = tiny.module.config
    cache = fresh_cache(KVCacheSpec.of("fp8"), config)
    assert cache.is_croppable is False or cache.layers  # layers exist before the first update
    torch.manual_seed(0)
    keys, values = torch.randn(1, 2, 10, 16), torch.randn(1, 2, 10, 16)
    layer = cache.layers[0]
    layer.update(keys[:, :, :7], values[:, :, :7])
    held = (layer._quantized_keys[0].clone(), layer._quantized_values[0].clone())
    layer.update(keys[:, :, 7:], values[:, :, 7:])
    assert layer.get_seq_length() == 10 and layer.is_croppable
    layer.crop(-3)
    assert layer.get_seq_length() == 7
    assert torch.equal(layer._quantized_keys[0].float(), held[0].float())
    assert torch.equal(layer._quantized_values[0].float(), held[1].float())
    with pytest.raises(ValueError, match="removes a number of tokens"):
        layer.crop(5)
    with pytest.raises(ValueError, match="takes no settings"):
        fresh_cache(KVCacheSpec.of("fp8", residual_length=32), config)
    # prompt lookup on the fp8 cache: transformers crops it after every verification; the tokens are
    # the undrafted fp8 cache's own
    from pytest_inferlab.optimizations.speculative import drafters, resolve_speculative

    fp8 = with_cache(tiny, "fp8")
    spec = resolve_speculative("prompt-lookup")
    drafted = fp8.with_assist(spec, drafters.get(spec.method).assist(spec, fp8, None))
    request = Request(0, tuple([5, 6, 7, 8] * 6), 24, True)
    plain = fp8.generate([request], SamplingSpec())[0]
    assisted = drafted.generate([request], SamplingSpec())[0]
    assert plain.ok and assisted.ok and assisted.output_ids == plain.output_ids


def test_drafting_on_a_cache_that_cannot_be_cropped_says_why():
    assert kv_caches.get("fp8").unsupported_with_drafting() is None
    assert kv_caches.get("dynamic").unsupported_with_drafting() is None
    assert "cannot be cropped" in kv_caches.get("quanto-int4").unsupported_with_drafting()
    assert "continuous batching" in kv_caches.get("paged").unsupported_with_drafting()
