"""Latency-throughput curves: where each configuration sits under load.

Every case measured under an arrival process leaves one point in its record's ``curve`` (a rate
sweep leaves one per rate). At the end of a run outputs/curves.py reads them back from the records,
grouped by configuration (model, quantization, KV cache, batching engine), and prints them as a
table and draws ``latency_throughput.png``.
"""

from __future__ import annotations

from typing import Any, Mapping

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
