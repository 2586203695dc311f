"""KV-cache configurations: one registry, each entry a small mapping from a ``KVCacheSpec`` to
what the engine needs (transformers ``generate`` arguments), with the reason it cannot run.

transformers 5.23 caches: ``dynamic`` (grows per token), ``static`` (pre-allocated to the
generation length; ``static-compile`` adds ``torch.compile`` of the decode step), ``quantized``
(KIVI-style: recent tokens in full precision, older ones quantized; backends fp8 built in,
optimum-quanto int4/int2, HQQ int4) and ``offloaded`` (layers moved to host memory between uses,
CUDA only).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from pytest_inferlab.device import Device
from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.core import KVCacheSpec

__all__ = ["KVCacheSpec", "kv_caches", "resolve_kv", "unsupported_kv_reason", "generation_kwargs", "fresh_cache"]


class KVCacheConfig(Protocol):
    def unsupported(self, device: Device) -> str | None:
        """None when the configuration runs on ``device``; else why not (the skip reason)."""

    def unsupported_for_model(self, config: Any) -> str | None:
        """None when the model (its transformers config) can use it; else why not."""

    def generation_kwargs(self, spec: KVCacheSpec, device: Device) -> dict[str, Any]:
        """Arguments for transformers' ``GenerationConfig``."""

    def fresh_cache(self, spec: KVCacheSpec, model_config: Any) -> Any:
        """A new cache object for one ``generate`` call (``past_key_values``), or None when
        ``generation_kwargs`` name the cache and transformers builds it."""

    def unsupported_with_drafting(self) -> str | None:
        """None when speculative decoding can run on this cache; else why not (the skip reason)."""

    @property
    def lossless(self) -> bool:
        """True when decoding reads back exactly the keys and values it wrote (a quantized cache does
        not): accuracy floors measured on the weights then hold for the configuration too."""


kv_caches: Registry[KVCacheConfig] = Registry("KV-cache configurations")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


@dataclass(frozen=True, slots=True)
class TransformersCache:
    implementation: str | None  # transformers' cache_implementation; None = its default (dynamic)
    cache_config: dict[str, Any] = field(default_factory=dict)
    needs_package: tuple[str, str] | None = None  # (module, pip name)
    cuda_only: bool = False
    compile: bool = False
    factory: Callable[[Any], Any] | None = None  # builds the cache object itself (model config -> cache)
    croppable: bool = True  # assisted decoding crops the cache after each verification

    @property
    def lossless(self) -> bool:
        return self.implementation != "quantized"

    def unsupported_with_drafting(self) -> str | None:
        if self.croppable:
            return None
        return ("speculative decoding crops the cache after every verification, and transformers' quantized cache "
                "layers with a residual window (quanto, HQQ) cannot be cropped; drafting runs on the fp8 cache")

    def unsupported(self, device: Device) -> str | None:
        if self.cuda_only and not device.is_cuda:
            return "offloading moves the cache between GPU and host memory: CUDA devices only"
        if self.needs_package and not _installed(self.needs_package[0]):
            return f"{self.needs_package[1]} is not installed: pip install {self.needs_package[1]}"
        return None

    def unsupported_for_model(self, config: Any) -> str | None:
        if self.implementation == "sliding_window" and getattr(config, "sliding_window", None) is None:
            return ("the model's attention is not windowed (config.sliding_window is unset): a sliding-window cache "
                    "would drop keys it still attends to; use a model with sliding-window attention "
                    "(e.g. dummy:kv-heavy-sw)")
        return None

    def fresh_cache(self, spec: KVCacheSpec, model_config: Any) -> Any:
        if self.factory is None:
            return None
        if spec.settings:
            raise ValueError(f"KV cache {spec.kind} takes no settings (given: {dict(spec.settings)}); its fp8 states "
                             "are scaled per tensor: use quanto-int4 or hqq-int4 for group-wise settings")
        return self.factory(model_config)

    def generation_kwargs(self, spec: KVCacheSpec, device: Device) -> dict[str, Any]:
        if self.factory is not None:
            return {}  # the cache object is passed to generate (fresh_cache)
        kwargs: dict[str, Any] = {}
        if self.implementation:
            kwargs["cache_implementation"] = self.implementation
        config = {**self.cache_config, **dict(spec.settings)}
        if config:
            kwargs["cache_config"] = config
        if self.compile:
            from transformers import CompileConfig

            from pytest_inferlab.compat import compile_in_this_process, compile_on_every_device

            # compile in this process: inductor's worker processes would run beside the timed rounds
            # (each new prompt shape recompiles) and the interference probe would void the case
            compile_in_this_process()
            compile_config = compile_on_every_device(CompileConfig())
            kwargs["compile_config"] = compile_config
        return kwargs


kv_caches.register("dynamic", TransformersCache(None))
kv_caches.register("static", TransformersCache("static"))
kv_caches.register("static-compile", TransformersCache("static", compile=True))
def _croppable_fp8(model_config: Any) -> Any:
    from pytest_inferlab.compat import croppable_fp8_cache

    return croppable_fp8_cache(model_config)


# transformers' fp8 cache (QuantizedCache("fp8")) with croppable layers: the same states, and drafting can run on it
kv_caches.register("fp8", TransformersCache("quantized", {"backend": "fp8"}, factory=_croppable_fp8))
kv_caches.register("quanto-int4", TransformersCache("quantized", {"backend": "quanto", "nbits": 4},
                                                    ("optimum.quanto", "optimum-quanto"), croppable=False))
kv_caches.register("quanto-int2", TransformersCache("quantized", {"backend": "quanto", "nbits": 2},
                                                    ("optimum.quanto", "optimum-quanto"), croppable=False))
kv_caches.register("hqq-int4", TransformersCache("quantized", {"backend": "hqq", "nbits": 4}, ("hqq", "hqq"),
                                                 croppable=False))
kv_caches.register("offloaded", TransformersCache("offloaded", cuda_only=True))
kv_caches.register("sliding-window", TransformersCache("sliding_window"))


@dataclass(frozen=True, slots=True)
class PagedCache:
    """Continuous batching's paged cache (settings ``page_size``, ``num_blocks``): blocks of
    ``page_size`` tokens handed to requests as they grow. ``generate`` has no such cache, so it is
    served by ``batching=continuous`` (pytest_inferlab.run.batching.continuous) only."""

    lossless = True  # full-precision pages

    def unsupported(self, device: Device) -> str | None:
        return None

    def unsupported_for_model(self, config: Any) -> str | None:
        return None

    def fresh_cache(self, spec: KVCacheSpec, model_config: Any) -> Any:
        return None

    def unsupported_with_drafting(self) -> str | None:
        return "the paged cache is continuous batching's, which does not draft"

    def generation_kwargs(self, spec: KVCacheSpec, device: Device) -> dict[str, Any]:
        raise ValueError("KV cache paged is continuous batching's: measure it with batching='continuous' "
                         "(lab.measure(..., batching='continuous', load=...))")


kv_caches.register("paged", PagedCache())

# Configurations only the continuous batching engine serves, and those it cannot (it has its own cache).
CONTINUOUS_ONLY = {"paged"}
CONTINUOUS_COMPATIBLE = {"dynamic", "paged"}


def fresh_cache(spec: KVCacheSpec | None, model_config: Any) -> Any:
    """The cache object one ``generate`` call starts from, for configurations that build their own."""
    return None if spec is None else kv_caches.get(spec.kind).fresh_cache(spec, model_config)


def resolve_kv(value: str | KVCacheSpec) -> KVCacheSpec:
    """A name or a KVCacheSpec; an unknown name raises with the known ones (did-you-mean)."""
    return kv_caches.resolve(value, KVCacheSpec)


def unsupported_kv_reason(spec: KVCacheSpec, device: Device, model: Any = None) -> str | None:
    """Why ``spec`` cannot run on ``device`` (or, for a ``dummy:`` model spec, whose config is known
    without loading, on that model); None when it can. Other models are checked when loaded."""
    config = kv_caches.get(spec.kind)
    reason = config.unsupported(device)
    if reason:
        return f"KV cache {spec.kind} on {device.torch_name}: {reason}"
    if model is not None and model.source == "dummy":
        from pytest_inferlab.engines.sources import dummy_config

        try:
            reason = config.unsupported_for_model(dummy_config(model.location))
        except LookupError:
            return None  # an unknown preset is reported when the model loads
        return f"KV cache {spec.kind} on {model.name}: {reason}" if reason else None
    return None


def unsupported_for_engine(spec: KVCacheSpec, model_config: Any, model_name: str) -> str | None:
    reason = kv_caches.get(spec.kind).unsupported_for_model(model_config)
    return f"KV cache {spec.kind} on {model_name}: {reason}" if reason else None


def unsupported_pairing(spec: KVCacheSpec, batching: Any) -> str | None:
    """Why a cache configuration and a batching engine (a BatchingSpec, or None for plain
    ``generate`` batches) cannot go together, or None."""
    continuous = batching is not None and batching.kind == "continuous"
    if spec.kind in CONTINUOUS_ONLY and not continuous:
        return f"KV cache {spec.kind} is continuous batching's own: pair it with batching=continuous"
    if continuous and spec.kind not in CONTINUOUS_COMPATIBLE:
        return (f"continuous batching keeps its own paged cache; KV cache {spec.kind} applies to generate "
                "(sequential or static batching)")
    return None


def generation_kwargs(spec: KVCacheSpec | None, device: Device) -> dict[str, Any]:
    return {} if spec is None else kv_caches.get(spec.kind).generation_kwargs(spec, device)


def token_agreement(reference: dict[int, tuple[int, ...]], outputs: dict[int, tuple[int, ...]]) -> float | None:
    """Share of generated positions where a cache configuration's greedy tokens equal the dynamic
    cache's for the same request (position by position over the shorter of the two outputs)."""
    compared = matched = 0
    for index, ids in outputs.items():
        ref = reference.get(index, ())
        n = min(len(ids), len(ref))
        compared += n
        matched += sum(a == b for a, b in zip(ids[:n], ref[:n]))
    return matched / compared if compared else None
