"""The same specs as vLLM engine arguments (``vllm.LLM(**args)`` / ``vllm serve --flag``).

Pure functions, no vLLM import: they are tested on machines without vLLM against the argument
names and values of vLLM's documented ``EngineArgs`` (``block_size`` in 1/8/16/32/64/128,
``kv_cache_dtype`` auto/fp8/fp8_e4m3/fp8_e5m2, ``enable_prefix_caching``,
``gpu_memory_utilization``, ``num_gpu_blocks_override``, ``max_num_seqs``,
``max_num_batched_tokens``). vLLM's cache is always paged: configurations that name another
layout (static, quantized through quanto/HQQ, offloaded) have no vLLM counterpart and say so.
"""

from __future__ import annotations

from typing import Any, Callable

from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.core import KVCacheSpec

BLOCK_SIZES = (1, 8, 16, 32, 64, 128)
KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")
KV_KINDS = {"dynamic": "auto", "paged": "auto", "fp8": "fp8", "sliding-window": "auto"}


class NoVllmEquivalent(ValueError):
    """A spec vLLM cannot express; the message says why (the case's skip reason on vLLM)."""


def kv_engine_args(spec: KVCacheSpec | None) -> dict[str, Any]:
    """Engine arguments for a cache configuration. Settings: ``page_size`` -> ``block_size``,
    ``num_blocks`` -> ``num_gpu_blocks_override``, ``prefix_caching`` -> ``enable_prefix_caching``,
    ``gpu_memory_utilization``; fp8 takes ``format`` (e4m3 or e5m2)."""
    if spec is None:
        return {}
    if spec.kind not in KV_KINDS:
        raise NoVllmEquivalent(f"KV cache {spec.kind} has no vLLM equivalent: vLLM's cache is paged, with "
                               f"kv_cache_dtype one of {', '.join(KV_CACHE_DTYPES)}")
    settings = dict(spec.settings)
    args: dict[str, Any] = {}
    dtype = KV_KINDS[spec.kind]
    if spec.kind == "fp8" and "format" in settings:
        dtype = f"fp8_{settings.pop('format')}"
    if dtype not in KV_CACHE_DTYPES:
        raise NoVllmEquivalent(f"KV cache {spec.kind}: kv_cache_dtype {dtype!r} is not one of {', '.join(KV_CACHE_DTYPES)}")
    if dtype != "auto":
        args["kv_cache_dtype"] = dtype
    settings.pop("backend", None)  # transformers' quantized-cache backend; vLLM picks its own kernels
    if "page_size" in settings:
        size = settings.pop("page_size")
        if size not in BLOCK_SIZES:
            raise NoVllmEquivalent(f"KV cache {spec.kind}: page_size={size!r} is not a vLLM block_size "
                                   f"({', '.join(map(str, BLOCK_SIZES))})")
        args["block_size"] = size
    if "num_blocks" in settings:
        args["num_gpu_blocks_override"] = int(settings.pop("num_blocks"))
    if "prefix_caching" in settings:
        args["enable_prefix_caching"] = bool(settings.pop("prefix_caching"))
    if "gpu_memory_utilization" in settings:
        share = float(settings.pop("gpu_memory_utilization"))
        if not 0 < share <= 1:
            raise ValueError(f"KV cache {spec.kind}: gpu_memory_utilization={share} must be in (0, 1]")
        args["gpu_memory_utilization"] = share
    if settings:
        raise NoVllmEquivalent(f"KV cache {spec.kind}: settings {sorted(settings)} have no vLLM engine argument")
    return args


# One mapping per batching engine and per drafting method: a registry decides, not a string test.
BatchingArgs = Callable[[dict[str, Any]], dict[str, Any]]
SpeculativeArgs = Callable[[dict[str, Any], str], dict[str, Any]]
vllm_batching: Registry[BatchingArgs] = Registry("vLLM batching mappings")
vllm_speculative: Registry[SpeculativeArgs] = Registry("vLLM speculative mappings")


@vllm_batching.register("sequential")
def _sequential(settings: dict[str, Any]) -> dict[str, Any]:
    return {"max_num_seqs": 1}


@vllm_batching.register("continuous")
def _continuous(settings: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if "max_batch" in settings:
        args["max_num_seqs"] = int(settings["max_batch"])
    if "max_batch_tokens" in settings:
        args["max_num_batched_tokens"] = int(settings["max_batch_tokens"])
    paged = {k: settings[k] for k in ("page_size", "num_blocks") if k in settings}
    if paged:
        args.update(kv_engine_args(KVCacheSpec.of("paged", **paged)))
    return args


vllm_batching.register("server", _continuous)  # a server batches as vLLM does


def batching_engine_args(spec: Any) -> dict[str, Any]:
    """Engine arguments for a BatchingSpec: vLLM always batches continuously; ``max_batch`` ->
    ``max_num_seqs``, ``max_batch_tokens`` -> ``max_num_batched_tokens``; sequential = 1 sequence;
    static has no equivalent."""
    if spec is None:
        return {}
    if spec.kind not in vllm_batching:
        raise NoVllmEquivalent(f"batching {spec.kind} has no vLLM equivalent: vLLM's scheduler batches continuously")
    return vllm_batching.get(spec.kind)(dict(spec.settings))


@vllm_speculative.register("prompt-lookup")
def _ngram(settings: dict[str, Any], target_name: str) -> dict[str, Any]:
    return {"method": "ngram", "num_speculative_tokens": int(settings.get("num_tokens", 5)),
            "prompt_lookup_max": int(settings.get("max_ngram", 2)), "prompt_lookup_min": 1}


@vllm_speculative.register("draft")
def _draft_model(settings: dict[str, Any], target_name: str) -> dict[str, Any]:
    if "layers" in settings or "quant" in settings:
        raise NoVllmEquivalent("speculative draft: vLLM loads its draft by name; a truncated or quantized copy "
                               "made here (layers=, quant=) has no name it can load: save it and pass model=")
    return {"model": settings.get("model", target_name), "num_speculative_tokens": int(settings.get("num_tokens", 5))}


@vllm_speculative.register("eagle")
def _eagle(settings: dict[str, Any], target_name: str) -> dict[str, Any]:
    return {"method": settings.get("variant", "eagle"), "model": settings["model"],
            "num_speculative_tokens": int(settings.get("num_tokens", 5))}


def speculative_engine_args(spec: Any, target_name: str) -> dict[str, Any]:
    """``speculative_config`` for a SpeculativeSpec: ``prompt-lookup`` -> method ``ngram``
    (``num_tokens`` -> ``num_speculative_tokens``, ``max_ngram`` -> ``prompt_lookup_max``),
    ``draft`` -> ``model`` (+ ``num_speculative_tokens``), ``eagle`` -> method ``eagle``/``eagle3``
    with its head's ``model``. Early exit and universal drafts have no vLLM counterpart."""
    if spec is None:
        return {}
    if spec.method not in vllm_speculative:
        raise NoVllmEquivalent(f"speculative {spec.method} has no vLLM counterpart (vLLM: ngram, draft model, EAGLE)")
    return {"speculative_config": vllm_speculative.get(spec.method)(dict(spec.settings), target_name)}
