"""The vLLM adapter at its boundary, without vLLM: specs -> engine and sampling arguments with
vLLM's documented names, and RequestOutput-shaped results -> traces."""

from types import SimpleNamespace

import pytest

from pytest_inferlab.device import CPU, Device
from pytest_inferlab.engines.vllm_args import NoVllmEquivalent
from pytest_inferlab.specs.parallel import ParallelSpec
from pytest_inferlab.engines.vllm_engine import (engine_args, sampling_kwargs, trace_from_output,
                                                 unavailable_reason)
from pytest_inferlab.specs.core import KVCacheSpec, ModelSpec, QuantSpec, SamplingSpec, SpeculativeSpec
from pytest_inferlab.ground.trace import Request

HUB = ModelSpec(name="org/model", source="hub", location="org/model", dtype="bfloat16")


def test_engine_arguments_compose_every_spec():
    args = engine_args(vars_of(HUB, quant=QuantSpec.of("gptq")),
                       KVCacheSpec.of("fp8"), SpeculativeSpec.of("prompt-lookup", num_tokens=4),
                       ParallelSpec(tensor=2, pipeline=2, ray_address="ray://head:10001"), seed=3)
    assert args == {"model": "org/model", "dtype": "bfloat16", "seed": 3, "tensor_parallel_size": 2,
                    "pipeline_parallel_size": 2, "quantization": "gptq", "distributed_executor_backend": "ray",
                    "kv_cache_dtype": "fp8",
                    "speculative_config": {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 2,
                                           "prompt_lookup_min": 1}}


def vars_of(spec, **changes):
    import dataclasses

    return dataclasses.replace(spec, **changes)


def test_what_vllm_cannot_express_says_so():
    with pytest.raises(NoVllmEquivalent, match="quantization int8-dynamic has no vLLM counterpart"):
        engine_args(vars_of(HUB, quant=QuantSpec.of("int8-dynamic")))
    with pytest.raises(NoVllmEquivalent, match="dummy models"):
        engine_args(ModelSpec(name="dummy:tiny", source="dummy", location="tiny"))
    with pytest.raises(ValueError, match="degrees must be >= 1"):
        ParallelSpec(tensor=0)


def test_sampling_arguments():
    request = Request(2, (1, 2, 3), 16)
    assert sampling_kwargs(request, SamplingSpec(temperature=0.7, top_p=0.9, seed=10)) == {
        "max_tokens": 16, "temperature": 0.7, "top_p": 0.9, "seed": 12, "ignore_eos": True, "min_tokens": 16}


def output(ids, metrics=None, finished=True, cached=None):
    return SimpleNamespace(prompt_token_ids=[1, 2, 3], finished=finished, metrics=metrics, num_cached_tokens=cached,
                           outputs=[SimpleNamespace(token_ids=ids, finish_reason="length", text="...")])


def test_request_output_to_trace():
    request = Request(0, (1, 2, 3), 4)
    metrics = SimpleNamespace(arrival_time=1000.0, first_scheduled_time=1000.1, first_token_time=1000.3,
                              last_token_time=1000.9, time_in_queue=0.1, finished_time=1000.9)
    trace = trace_from_output(output([5, 6, 7, 8], metrics), request, t_send=50.0, wall_to_perf=-950.0, t_done=51.0)
    assert trace.ok and trace.output_ids == (5, 6, 7, 8) and trace.chunk_tokens == (1, 3)
    assert trace.chunk_times == (pytest.approx(50.3), pytest.approx(50.9)) and trace.t_admit == pytest.approx(50.1)
    plain = trace_from_output(output([5, 6]), request, t_send=50.0, wall_to_perf=-950.0, t_done=51.0)
    assert plain.chunk_times == (51.0,) and plain.chunk_tokens == (2,) and plain.cached_tokens is None
    assert trace_from_output(output([5], metrics, cached=2), request, 50.0, -950.0, 51.0).cached_tokens == 2
    assert not trace_from_output(output([]), request, 50.0, 0.0, 51.0).ok
    assert "no finished output" in trace_from_output(output([5], finished=False), request, 50.0, 0.0, 51.0).error


def test_unavailable_here_with_the_reason():
    reason = unavailable_reason(CPU)
    assert reason and ("not installed" in reason or "CUDA" in reason)
    assert unavailable_reason(Device("cpu"), ParallelSpec(tensor=2)) is not None


def test_vllm_counters_and_rates():
    from pytest_inferlab.engines.vllm_engine import counters_from_metrics, derived_rates

    metrics = [SimpleNamespace(name="vllm:prefix_cache_queries", value=200), SimpleNamespace(name="vllm:prefix_cache_hits", value=150),
               SimpleNamespace(name="vllm:spec_decode_num_drafts", value=10),
               SimpleNamespace(name="vllm:spec_decode_num_draft_tokens", value=40),
               SimpleNamespace(name="vllm:spec_decode_num_accepted_tokens", value=None, values=[20, 10]),
               SimpleNamespace(name="vllm:generation_tokens", value=999)]
    counts = counters_from_metrics(metrics)
    assert counts == {"prefix_cache_queries": 200, "prefix_cache_hits": 150, "spec_decode_num_drafts": 10,
                      "spec_decode_num_draft_tokens": 40, "spec_decode_num_accepted_tokens": 30}
    assert derived_rates(counts) == {"prefix_cache_hit_rate": 0.75, "spec_decode_acceptance_rate": 0.75,
                                     "spec_decode_accepted_per_draft": 3.0}
