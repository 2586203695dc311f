"""Which family a record belongs to, and its optimization in words: the classification the
findings, the report and the trade-off read (a record's spec and engine facts in, a name out)."""

from __future__ import annotations

from typing import Any, Mapping

from pytest_inferlab.record.record import Record
from pytest_inferlab.specs.load import LoadSpec

LATENCY, QUANT, KV, SPECULATIVE, COMPOSITION, BATCHING, SERVING, PARALLEL = (
    "latency", "quantization", "kv-cache", "speculative", "composition", "batching", "serving", "parallel")
FAMILY_ORDER = (LATENCY, QUANT, KV, SPECULATIVE, COMPOSITION, BATCHING, SERVING, PARALLEL)

ENGINE_WORDS = {"llamacpp": "llama.cpp"}  # engines named in a label (transformers is the default, unnamed)


def named(spec: Mapping[str, Any] | None, field: str) -> str | None:
    """A method or kind with its settings, as a label shows it: ``gptq(bits=4)``; None without a spec."""
    if not spec:
        return None
    settings = ",".join(f"{k}={v}" for k, v in spec.get("settings") or [])
    return f"{spec[field]}({settings})" if settings else str(spec[field])


def family_of(record: Record) -> str:
    spec = record.spec
    kv = spec.get("kv_cache")
    stacked = [name for name, present in ((QUANT, (spec.get("model") or {}).get("quant")),
                                          (KV, kv and kv.get("kind") != "dynamic"),
                                          (SPECULATIVE, spec.get("speculative"))) if present]
    if len(stacked) > 1:
        return COMPOSITION
    if stacked:
        return stacked[0]
    if record.conditions.get("parallel") or (record.engine.get("facts") or {}).get("tensor_parallel"):
        return PARALLEL
    batching = spec.get("batching")
    if batching:
        return SERVING if batching.get("kind") == "server" else BATCHING
    return LATENCY


def optimization_label(record: Record, family: str) -> str:
    spec = record.spec
    model = spec.get("model") or {}
    parts = []
    if model.get("quant"):
        parts.append(named(model["quant"], "method"))
    if spec.get("kv_cache") and spec["kv_cache"].get("kind") != "dynamic":
        parts.append(f"{named(spec['kv_cache'], 'kind')} KV cache")
    if spec.get("speculative"):
        parts.append(f"{named(spec['speculative'], 'method')} drafting")
    if family == PARALLEL:
        ranks = len((record.conditions.get("parallel") or {}).get("peak_rss_bytes_per_rank") or [])
        parts.append(f"tensor parallel x{ranks}" if ranks else "parallel layout")
    if spec.get("batching"):
        load = LoadSpec(**spec["load"]).label if spec.get("load") else ""
        kind = spec["batching"]["kind"]
        parts.append(f"{kind} {load}".strip() if kind == "server" else f"{kind} batching {load}".strip())
    if not parts:
        parts.append(f"{model.get('name', '?')} as is")
    engine = record.engine.get("engine")
    if engine in ENGINE_WORDS:  # the runtime is part of what a user would pick
        parts[0] += f" on {ENGINE_WORDS[engine]}"
    workload = (spec.get("workload") or {}).get("name")
    batch = spec.get("batch_size", 1)
    where = f" on {workload}" + (f", batch {batch}" if batch != 1 else "")
    return " + ".join(parts) + where


def case_shape(record: Record) -> tuple[Any, ...]:
    """(model, workload, batch size, device): records with the same shape are comparable cases."""
    spec = record.spec
    workload = spec.get("workload") or {}
    return ((spec.get("model") or {}).get("name"), workload.get("name"), spec.get("batch_size", 1), spec.get("device"))
