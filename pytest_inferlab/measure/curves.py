"""Latency-throughput curves: where each configuration sits under load.

Every case measured under an arrival process leaves one point in its record's ``curve`` (a rate
sweep leaves one per rate). At the end of a run the points are grouped by configuration (model,
quantization, KV cache, batching engine); outputs/curves.py prints them as a table and draws
``latency_throughput.png``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from pytest_inferlab.specs.load import LoadSpec
from pytest_inferlab.measure.metrics import Measurement
from pytest_inferlab.specs.slo import SLO


def curve_point(load: LoadSpec, measurements: Mapping[str, Measurement], generator: Mapping[str, Any],
                slo: SLO, attainment_target: float) -> dict[str, Any]:
    """One point: the load, what it achieved, its latency percentiles, and whether it was sustained
    (SLO attainment at the target, the generator on schedule, nothing cut by the time budget)."""
    def value(name: str, field: str = "value") -> float | None:
        m = measurements.get(name)
        return getattr(m, field) if m is not None else None

    attainment = value("slo_attainment")
    sustained = (attainment is not None and attainment >= attainment_target and not generator.get("shortfall")
                 and not generator.get("cut_by_budget") and not generator.get("over_saturated"))
    return {"load": load.label, "process": load.process, "rate": load.rate, "slo": slo.label(),
            "attainment_target": attainment_target, "offered_req_per_s": generator.get("offered_req_per_s"),
            "req_per_s": value("req_per_s"), "output_tok_per_s": value("output_tok_per_s"),
            "ttft_p50_ms": value("ttft_ms", "p50"), "ttft_p99_ms": value("ttft_ms", "p99"),
            "tpot_p50_ms": value("tpot_ms", "p50"), "tpot_p99_ms": value("tpot_ms", "p99"),
            "goodput_req_per_s": value("goodput_req_per_s"), "slo_attainment": attainment,
            "failed_requests": value("failed_requests"), "sustained": sustained,
            "shortfall": generator.get("shortfall"), "over_saturated": bool(generator.get("over_saturated"))}


def configuration_label(record: Mapping[str, Any]) -> str:
    """What distinguishes one line of the plot: model, quantization, KV cache, batching engine (with
    its settings), workload (points of different traffic are different curves)."""
    spec = record.get("spec", {})
    model = spec.get("model") or {}
    parts = [str(model.get("name", "?"))]
    if model.get("quant"):
        parts.append(model["quant"]["method"])
    if spec.get("kv_cache"):
        parts.append(f"kv={spec['kv_cache']['kind']}")
    batching = spec.get("batching") or {}
    settings = batching.get("settings") or []
    parts.append(batching.get("kind", "static") + "".join(f" {k}={v}" for k, v in settings))
    workload = (spec.get("workload") or {}).get("name")
    if workload:
        parts.append(f"on {workload}")
    return " ".join(parts)


def curves_of(records: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Points per configuration label, from the records (JSON form) that have any."""
    curves: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        label = configuration_label(record)
        for point in record.get("curve") or []:
            if point.get("output_tok_per_s") is not None:  # one line per configuration and arrival process
                curves.setdefault(f"{label} {point.get('process', '')}".strip(), []).append(point)
    return {label: sorted(points, key=lambda p: p["output_tok_per_s"]) for label, points in sorted(curves.items())}
