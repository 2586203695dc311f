"""What a server says about itself on Prometheus ``/metrics``: requests running and waiting, KV-cache
usage, prefix-cache hits, speculative acceptance, under one vocabulary whatever the server.

Each server family is a ``ServerSchema`` (registry ``server_schemas``) naming its metrics as its
documentation does: vLLM (``vllm:``), llama.cpp's server with ``--metrics`` (``llamacpp:``), TGI
(``tgi_``), SGLang with ``--enable-metrics`` (``sglang:``). The text is parsed by
prometheus_client's parser; a case scrapes before and after each round and samples during it
(``ServerMetrics``), and ``summarize`` turns that into the record's ``conditions.server_metrics``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from pytest_inferlab.registry import Registry

GAUGES = ("running", "waiting", "kv_cache_usage", "prefix_cache_hit_rate", "spec_accept_length")
COUNTERS = ("prefix_cache_queries", "prefix_cache_hits", "spec_draft_tokens", "spec_accepted_tokens",
            "prompt_tokens", "generation_tokens")


@dataclass(frozen=True, slots=True)
class ServerSchema:
    """One server family: the prefix that identifies it and its names for each quantity (first found wins)."""

    name: str
    prefix: str
    gauges: Mapping[str, tuple[str, ...]]
    counters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def read(self, values: Mapping[str, float]) -> dict[str, float]:
        out = {}
        for quantity, names in (*self.gauges.items(), *self.counters.items()):
            found = next((values[n] for n in names if n in values), None)
            if found is not None:
                out[quantity] = found
        return out


server_schemas: Registry[ServerSchema] = Registry("server metric schemas")
server_schemas.register("vllm", ServerSchema(
    "vllm", "vllm:",
    gauges={"running": ("vllm:num_requests_running",), "waiting": ("vllm:num_requests_waiting",),
            "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")},
    counters={"prefix_cache_queries": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
              "prefix_cache_hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
              "spec_draft_tokens": ("vllm:spec_decode_num_draft_tokens_total",),
              "spec_accepted_tokens": ("vllm:spec_decode_num_accepted_tokens_total",),
              "prompt_tokens": ("vllm:prompt_tokens_total",),
              "generation_tokens": ("vllm:generation_tokens_total",)}))
server_schemas.register("llama.cpp", ServerSchema(
    "llama.cpp", "llamacpp:",
    gauges={"running": ("llamacpp:requests_processing",), "waiting": ("llamacpp:requests_deferred",),
            "kv_cache_usage": ("llamacpp:kv_cache_usage_ratio",)},
    counters={"prompt_tokens": ("llamacpp:prompt_tokens_total",),
              "generation_tokens": ("llamacpp:tokens_predicted_total",)}))
server_schemas.register("tgi", ServerSchema(
    "tgi", "tgi_",
    gauges={"running": ("tgi_batch_current_size",), "waiting": ("tgi_queue_size",)}))
server_schemas.register("sglang", ServerSchema(
    "sglang", "sglang:",
    gauges={"running": ("sglang:num_running_reqs",), "waiting": ("sglang:num_queue_reqs",),
            "kv_cache_usage": ("sglang:token_usage",), "prefix_cache_hit_rate": ("sglang:cache_hit_rate",),
            "spec_accept_length": ("sglang:spec_accept_length",)},
    counters={"prompt_tokens": ("sglang:prompt_tokens_total",),
              "generation_tokens": ("sglang:generation_tokens_total",)}))


def parse_metrics(text: str) -> dict[str, float]:
    """Sample name -> value, summed over label sets (several models or ranks add up); histogram
    buckets are left out. Raises ValueError on text that is not the Prometheus format."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_created")):
                continue
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values


def schema_for(values: Mapping[str, float]) -> ServerSchema | None:
    """The family whose prefix the scraped names carry, or None."""
    for name in server_schemas.names():
        schema = server_schemas.get(name)
        if any(key.startswith(schema.prefix) for key in values):
            return schema
    return None


@dataclass(frozen=True, slots=True)
class Scrape:
    """One reading of ``/metrics``: the family and its quantities, or why there is none."""

    at: float
    schema: str | None
    quantities: Mapping[str, float]
    absent: str | None = None


def reading(at: float, status: int, text: str) -> Scrape:
    """A scrape from the HTTP answer: no answer, not found, not Prometheus, or no known family."""
    if status == 0:
        return Scrape(at, None, {}, f"/metrics did not answer ({text})")
    if status >= 400:
        return Scrape(at, None, {}, f"the server has no /metrics (HTTP {status})")
    try:
        values = parse_metrics(text)
    except ValueError as exc:
        return Scrape(at, None, {}, f"/metrics is not in the Prometheus text format ({exc})")
    schema = schema_for(values)
    if schema is None:
        return Scrape(at, None, {}, "/metrics names no metrics of a known server "
                      f"({', '.join(server_schemas.names())})")
    return Scrape(at, schema.name, schema.read(values))


@dataclass(frozen=True, slots=True)
class RoundTelemetry:
    """A round's scrapes: ``before`` and ``after`` the round, ``during`` it every ``period_s``."""

    before: Scrape
    after: Scrape
    during: tuple[Scrape, ...] = ()
    period_s: float = 0.0


def summarize(rounds: Sequence[RoundTelemetry]) -> dict[str, Any]:
    """``conditions.server_metrics`` of a case: gauges over the samples (max, mean), counter changes
    summed over its rounds, and the rates derived from them; ``absent`` when there is nothing."""
    usable = [r for r in rounds if r.before.schema is not None and r.after.schema is not None]
    if not usable:
        first = rounds[0].before.absent if rounds else "no round was measured"
        return {"absent": first or "the server's /metrics could not be read"}
    samples = [s for r in usable for s in (r.before, *r.during, r.after) if s.schema is not None]
    out: dict[str, Any] = {"server": usable[0].before.schema, "samples": len(samples),
                           "period_s": usable[0].period_s}
    for quantity in GAUGES:
        seen = [s.quantities[quantity] for s in samples if quantity in s.quantities]
        if seen:
            out[quantity] = {"max": max(seen), "mean": statistics.fmean(seen)}
    changes: dict[str, float] = {}
    for quantity in COUNTERS:
        deltas = [r.after.quantities[quantity] - r.before.quantities[quantity] for r in usable
                  if quantity in r.after.quantities and quantity in r.before.quantities]
        if deltas:
            changes[quantity] = sum(deltas)
    out["counters"] = changes
    if changes.get("prefix_cache_queries"):
        out["prefix_cache_hit_rate"] = {"max": None, "mean": changes["prefix_cache_hits"] / changes["prefix_cache_queries"]}
    if changes.get("spec_draft_tokens"):
        out["spec_acceptance_rate"] = changes["spec_accepted_tokens"] / changes["spec_draft_tokens"]
    return out


DERIVED = {"server_running_max": ("running", "max"), "server_waiting_max": ("waiting", "max"),
           "server_kv_cache_usage_max": ("kv_cache_usage", "max"),
           "server_prefix_cache_hit_rate": ("prefix_cache_hit_rate", "mean")}


def derived_values(summary: Mapping[str, Any]) -> dict[str, float]:
    """The measurements a summary gives (catalog names ``server_*``)."""
    out = {name: summary[q][field_] for name, (q, field_) in DERIVED.items()
           if isinstance(summary.get(q), Mapping) and summary[q].get(field_) is not None}
    if summary.get("spec_acceptance_rate") is not None:
        out["server_spec_acceptance_rate"] = summary["spec_acceptance_rate"]
    return out
