"""Configurations the registries already know cannot run, found before anything is measured.

Each impossible configuration comes back with its reason (the same checks collection applies to a
suite's parameters), so the study's output lists what it left out and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_inferlab.device import Device
from pytest_inferlab.optimizations.kv import kv_caches, unsupported_kv_reason, unsupported_pairing
from pytest_inferlab.optimizations.quant import quant_methods, unsupported_reason
from pytest_inferlab.optimizations.speculative import drafters, unsupported_speculative_reason
from pytest_inferlab.specs.core import ModelSpec
from pytest_inferlab.tune.space import Config, Space


@dataclass(frozen=True, slots=True)
class Pruned:
    config: Config
    reason: str


def impossible(config: Config, device: Device, model: ModelSpec | None) -> str | None:
    """Why ``config`` cannot run on ``device`` with ``model``, or None."""
    reason = unsupported_reason(config.quantization, device, model)
    if reason:
        return reason
    runtime = quant_methods.get(config.quantization.method).runtime
    dynamic = config.kv_cache.kind == "dynamic" and not config.kv_cache.settings
    if not dynamic:
        reason = unsupported_kv_reason(config.kv_cache, device, model) or unsupported_pairing(config.kv_cache, None)
        if reason:
            return reason
        if runtime != "transformers":
            return (f"KV cache {config.kv_cache.kind} with {config.quantization.method}: the lab's cache "
                    f"configurations are transformers caches; {runtime} keeps its own")
        if config.quantization.method != "fp32":
            return (f"KV cache {config.kv_cache.kind} with {config.quantization.method}: the lab composes a cache "
                    "configuration with the plain model (the kv_model fixture), not with a quantized one")
    if config.drafting is not None:
        if config.batch_size != 1:
            return (f"{config.drafting.method} with batch {config.batch_size}: the lab's drafting runs one request "
                    "at a time (transformers' assisted generation)")
        reason = unsupported_speculative_reason(config.drafting, device)
        if reason:
            return reason
        needs = drafters.get(config.drafting.method).needs
        if runtime == "llama.cpp" and not needs.llamacpp:
            return (f"speculative {config.drafting.method} on llama.cpp ({config.quantization.method}): llama.cpp "
                    "runs prompt-lookup and draft only")
        if not dynamic:
            why = kv_caches.get(config.kv_cache.kind).unsupported_with_drafting()
            if why:
                return f"{config.drafting.method} on KV cache {config.kv_cache.kind}: {why}"
    return None


def split(space: Space, device: Device, model: ModelSpec | None) -> tuple[list[Config], list[Pruned]]:
    """Every configuration of ``space``: those that can run, and those pruned with their reasons."""
    feasible, pruned = [], []
    requests = space.workload_spec.count
    for config in space.configurations():
        reason = impossible(config, device, model)
        if reason is None and config.batch_size > requests:
            reason = (f"batch {config.batch_size} with {requests} requests a round ({space.workload}): the batch "
                      f"would hold {requests}; raise [study.workload_overrides] count")
        if reason:
            pruned.append(Pruned(config, reason))
        else:
            feasible.append(config)
    return feasible, pruned
