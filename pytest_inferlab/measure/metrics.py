"""Pure functions from traces to measurements (DESIGN §4). Units are in the names.

Missing data is ``None`` (or an entry in ``absent`` with the reason), never 0.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from pytest_inferlab.registry import Registry
from pytest_inferlab.run.trace import RequestTrace, RoundTrace


@dataclass(frozen=True, slots=True)
class MetricDef:
    """How to read a metric: its unit and which direction is better."""

    name: str
    unit: str
    higher_is_better: bool
    help: str


metric_defs: Registry[MetricDef] = Registry("metrics")


def _define(name: str, unit: str, higher_is_better: bool, help: str) -> None:
    metric_defs.register(name, MetricDef(name, unit, higher_is_better, help))


_define("ttft_ms", "ms", False, "time to first token: first delivery - send")
_define("tpot_ms", "ms", False, "time per output token after the first: (e2e - ttft) / (N - 1), requests with N > 1")
_define("itl_ms", "ms", False, "inter-token latency: every gap between successive deliveries, pooled")
_define("itl_p25_ms", "ms", False, "lower quartile of the inter-token latencies: decode speed as least disturbed "
        "by the host, the gate's most sensitive timing series")
_define("e2e_ms", "ms", False, "end-to-end latency: last delivery - send")
_define("tokens_per_delivery", "tokens", True, "tokens carried by one delivery (1 unless speculative or chunked)")
_define("input_tokens", "tokens", True, "prompt length per request")
_define("output_tok_per_s", "tok/s", True, "output tokens / measured window")
_define("total_tok_per_s", "tok/s", True, "(input + output tokens) / measured window")
_define("req_per_s", "req/s", True, "completed requests / measured window")
_define("goodput_req_per_s", "req/s", True, "requests meeting every SLO / measured window")
_define("queue_ms", "ms", False, "time a request waited between arriving and the engine taking it in (under an "
        "arrival process; part of its TTFT)")
_define("slo_attainment", "fraction", True, "share of requests meeting every configured SLO (failed ones do not)")
_define("offered_req_per_s", "req/s", True, "arrival rate the load generator delivered (open loop; the schedule's "
        "rate when it kept up)")
_define("saturation_req_per_s", "req/s", True, "highest arrival rate of a sweep whose SLO attainment reached the "
        "target with the load generator keeping its schedule")
_define("capacity_req_per_s", "req/s", True, "completed requests/s of the sweep's closed loop at the engine's "
        "largest batch: what the engine can do when never idle")
_define("acceptance_rate", "fraction", True, "speculative: drafted tokens the target accepted / drafted tokens "
        "proposed (accepted = output tokens - target forwards)")
_define("tokens_per_target_forward", "tokens", True, "speculative: output tokens per target forward pass (forwards "
        "counted by a hook, not inferred); 1 without drafting")
_define("target_forwards", "forwards", False, "speculative: target forward passes over the measured rounds")
_define("draft_cost_share", "fraction", False, "speculative: share of generate time spent drafting (candidate "
        "generation: n-gram search or draft-model forwards)")
_define("speculative_speedup", "x", True, "speculative: median over interleaved round pairs of the target's own "
        "window / the drafted window (same requests, same run)")
_define("target_output_tok_per_s", "tok/s", True, "speculative: output tokens/s of the same target without "
        "drafting, in the interleaved rounds")
_define("sampled_unigram_tv", "fraction", False, "speculative under sampling: total variation between the token "
        "frequencies of drafted and undrafted outputs (tokens differ by design; their distribution must not)")
_define("failed_requests", "requests", False, "requests that ended with ok=False")
_define("peak_mem_bytes", "B", False, "peak RSS (CPU) or torch peak allocated (CUDA) during the case")
_define("peak_mem_per_rank_bytes", "B", False, "tensor parallel on CPU: peak RSS of each rank (samples per rank; "
        "headline the median)")
_define("peak_mem_reserved_bytes", "B", False, "torch peak reserved memory (CUDA)")
_define("model_bytes", "B", False, "bytes of weights and buffers, tied tensors once")
_define("energy_j", "J", False, "device energy counter delta over the timed rounds (whole device)")
_define("tok_per_j", "tok/J", True, "output tokens per joule")
_define("kld_mean", "nats", False, "mean KL divergence of next-token distributions, reference || variant, on the fidelity text")
_define("kld_p99", "nats", False, "99th percentile of the per-position KL divergence")
_define("top1_agreement", "fraction", True, "positions where variant and reference rank the same next token first")
_define("ppl", "ppl", False, "perplexity of the fidelity text under the model")
_define("ppl_delta_pct", "%", False, "perplexity change vs the unquantized reference")
_define("kv_cache_bytes", "B", False, "bytes the KV cache held at the end of the case's last generate call "
        "(every tensor of the cache object: keys, values, quantized payloads, scales, residuals)")
_define("kv_bytes_per_token", "B", False, "kv_cache_bytes / (positions the cache covers x batch rows); a static "
        "cache counts its pre-allocated length")
_define("kv_token_agreement", "fraction", True, "greedy output positions equal to the dynamic cache's for the "
        "same requests (lossy caches drift; a lossless one must be 1)")
_define("kv_kld_mean", "nats", False, "mean KL divergence of the decode steps' next-token distributions with this "
        "cache vs the same tokens without a cache (first request of the workload, greedy)")
_define("decode_gb_per_s", "GB/s", True, "weight bytes read per second by decode steps: model_bytes / TPOT")
_define("mem_copy_gb_per_s", "GB/s", True, "measured copy bandwidth of the device (read + write), the memory-bound limit")
_define("decode_bw_fraction", "fraction", True, "decode_gb_per_s / mem_copy_gb_per_s: how close decoding runs to the limit")
_define("inferlab_mc.acc", "fraction", True, "accuracy on the shipped 120-item multiple-choice task (lm-eval)")
_define("inferlab_ppl.word_perplexity", "ppl", False, "word perplexity of the shipped report text (lm-eval, rolling)")
_define("inferlab_ppl.byte_perplexity", "ppl", False, "byte perplexity of the shipped report text (lm-eval, rolling)")
_define("inferlab_ppl.bits_per_byte", "bits", False, "bits per byte of the shipped report text (lm-eval, rolling)")


def define_eval_metric(name: str, higher_is_better: bool) -> None:
    """Metrics of other lm-eval tasks (``<task>.<metric>``) are defined when first measured."""
    if name not in metric_defs:
        _define(name, "score", higher_is_better, "lm-eval task score")


_define("bare_output_tok_per_s", "tok/s", True, "output tokens/s of a bare model.generate loop (self-measurement)")
_define("harness_overhead_pct", "%", False, "tokens/s lost by the recording path vs a bare generate loop (interleaved)")
_define("harness_cost_pct", "%", False, "time in the recording path's own code (timed in isolation) / round time")


@dataclass(frozen=True, slots=True)
class Measurement:
    """One metric of one case: a headline ``value`` plus the samples it came from.

    Distributions (latencies) have mean/p50/p90/p99 and ``value`` = p50; rates have ``value`` =
    the aggregate over all measured rounds and one sample per round.
    """

    unit: str
    value: float | None
    samples: tuple[float, ...] = ()
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    ci95: tuple[float, float] | None = None  # confidence interval of ``value``, where one was computed

    def to_dict(self) -> dict[str, object]:
        out = {"unit": self.unit, "value": self.value, "mean": self.mean, "p50": self.p50, "p90": self.p90,
               "p99": self.p99, "n": len(self.samples), "samples": list(self.samples)}
        if self.ci95 is not None:
            out["ci95"] = list(self.ci95)
        return out


@dataclass(frozen=True, slots=True)
class SLO:
    """Per-request service-level objectives; a request meets the SLO when it meets every bound set."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None

    def is_set(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2e_ms))

    def label(self) -> str:
        return " ".join(f"{name}<={value:g}" for name, value in self.to_dict().items()) or "none"

    def to_dict(self) -> dict[str, float]:
        bounds = {"ttft_ms": self.ttft_ms, "tpot_ms": self.tpot_ms, "e2e_ms": self.e2e_ms}
        return {name: value for name, value in bounds.items() if value is not None}

    @classmethod
    def from_mapping(cls, bounds: Mapping[str, object], source: str) -> "SLO":
        """``{"ttft_ms": 2000, "tpot_ms": 150}``; a bad name or value raises naming ``source``."""
        known = ("ttft_ms", "tpot_ms", "e2e_ms")
        values: dict[str, float] = {}
        for name, value in bounds.items():
            if name not in known:
                raise ValueError(f"{source}: no SLO on {name!r}; SLOs bound {', '.join(known)}")
            try:
                values[name] = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ValueError(f"{source}: {name}={value!r} is not a number of milliseconds") from None
            if not values[name] > 0:
                raise ValueError(f"{source}: {name}={value!r} must be > 0 ms")
        return cls(**values)

    @classmethod
    def parse(cls, text: str, source: str) -> "SLO":
        """``"ttft_ms=2000 tpot_ms=150"`` (spaces or commas)."""
        bounds = {}
        for item in str(text).replace(",", " ").split():
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"{source}: {item!r} is not METRIC=MILLISECONDS (e.g. ttft_ms=2000)")
            bounds[name] = value
        return cls.from_mapping(bounds, source)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on pre-sorted values."""
    pos = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def distribution(name: str, samples: Iterable[float]) -> Measurement | None:
    values = tuple(samples)
    if not values:
        return None
    ordered = sorted(values)
    p50 = percentile(ordered, 50)
    return Measurement(metric_defs.get(name).unit, p50, values, statistics.fmean(values), p50,
                       percentile(ordered, 90), percentile(ordered, 99))


def lower_quartile(name: str, samples: Sequence[float]) -> Measurement | None:
    """The 25th percentile as the headline (samples stay with ``itl_ms``; not copied twice)."""
    return Measurement(metric_defs.get(name).unit, percentile(sorted(samples), 25)) if samples else None


def rate(name: str, numerators: Sequence[float], windows: Sequence[float]) -> Measurement | None:
    """Aggregate over all windows; one sample per window (round) for run-to-run statistics."""
    total_window = sum(windows)
    if total_window <= 0:
        return None
    per_round = tuple(n / w for n, w in zip(numerators, windows) if w > 0)
    return Measurement(metric_defs.get(name).unit, sum(numerators) / total_window, per_round)


def ttft_ms(r: RequestTrace) -> float | None:
    return (r.chunk_times[0] - r.t_send) * 1e3 if r.ok and r.chunk_times else None


def e2e_ms(r: RequestTrace) -> float | None:
    return (r.chunk_times[-1] - r.t_send) * 1e3 if r.ok and r.chunk_times else None


def tpot_ms(r: RequestTrace) -> float | None:
    if not r.ok or r.output_tokens <= 1:
        return None
    return (e2e_ms(r) - ttft_ms(r)) / (r.output_tokens - 1)


def itl_ms(r: RequestTrace) -> list[float]:
    if not r.ok:
        return []
    return [(b - a) * 1e3 for a, b in zip(r.chunk_times, r.chunk_times[1:])]


def meets(r: RequestTrace, slo: SLO) -> bool:
    checks = ((slo.ttft_ms, ttft_ms(r)), (slo.tpot_ms, tpot_ms(r)), (slo.e2e_ms, e2e_ms(r)))
    return r.ok and all(bound is None or (value is not None and value <= bound) for bound, value in checks)


def queue_ms(r: RequestTrace) -> float | None:
    return (r.t_admit - r.t_send) * 1e3 if r.ok and r.t_admit is not None else None


def window_s(round_: RoundTrace) -> float:
    """The measured window of a round: first send to last delivery (or the round's end)."""
    starts = [r.t_send for r in round_.requests]
    ends = [r.chunk_times[-1] for r in round_.requests if r.chunk_times]
    if not starts:
        return 0.0
    return max(ends + [round_.t_end]) - min(starts) if ends else round_.t_end - min(starts)


def bootstrap_median_ci(samples: Sequence[float], seed: int = 0, resamples: int = 2000) -> tuple[float, float]:
    """Percentile-bootstrap 95% interval of the median (seeded: the same samples give the same interval)."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(samples, k=len(samples))) for _ in range(resamples))
    return percentile(medians, 2.5), percentile(medians, 97.5)


def _drop_none(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def measure(rounds: Sequence[RoundTrace], slo: SLO = SLO()) -> tuple[dict[str, Measurement], dict[str, str]]:
    """Latency and throughput of the measured (non-warm-up) rounds: (measurements, absent reasons)."""
    measured = [r for r in rounds if not r.warmup]
    requests = [req for r in measured for req in r.requests]
    ok = [req for req in requests if req.ok]
    windows = [window_s(r) for r in measured]
    out: dict[str, Measurement | None] = {
        "ttft_ms": distribution("ttft_ms", _drop_none(map(ttft_ms, ok))),
        "tpot_ms": distribution("tpot_ms", _drop_none(map(tpot_ms, ok))),
        "itl_ms": distribution("itl_ms", [gap for req in ok for gap in itl_ms(req)]),
        "e2e_ms": distribution("e2e_ms", _drop_none(map(e2e_ms, ok))),
        "itl_p25_ms": lower_quartile("itl_p25_ms", [gap for req in ok for gap in itl_ms(req)]),
        "tokens_per_delivery": distribution("tokens_per_delivery", [n for req in ok for n in req.chunk_tokens]),
        "input_tokens": distribution("input_tokens", [req.input_tokens for req in requests]),
        "output_tok_per_s": rate("output_tok_per_s", [_out_tokens(r) for r in measured], windows),
        "total_tok_per_s": rate("total_tok_per_s", [_out_tokens(r) + _in_tokens(r) for r in measured], windows),
        "req_per_s": rate("req_per_s", [sum(q.ok for q in r.requests) for r in measured], windows),
        "failed_requests": Measurement("requests", float(len(requests) - len(ok))) if requests else None,
    }
    absent: dict[str, str] = {}
    queued = _drop_none(map(queue_ms, ok))
    if queued:
        out["queue_ms"] = distribution("queue_ms", queued)
    if slo.is_set():
        out["goodput_req_per_s"] = rate("goodput_req_per_s", [sum(meets(q, slo) for q in r.requests) for r in measured], windows)
        out["slo_attainment"] = Measurement("fraction", sum(meets(q, slo) for q in requests) / len(requests)) if requests else None
    else:
        absent["goodput_req_per_s"] = absent["slo_attainment"] = "no SLO configured"
    for name, value in out.items():
        if value is None:
            absent[name] = "no completed requests" if not ok else "no samples (e.g. every request produced one token)"
    return {k: v for k, v in out.items() if v is not None}, absent


def _out_tokens(round_: RoundTrace) -> int:
    return sum(q.output_tokens for q in round_.requests if q.ok)


def _in_tokens(round_: RoundTrace) -> int:
    return sum(q.input_tokens for q in round_.requests if q.ok)


def scalar(name: str, value: float | None) -> Measurement | None:
    return None if value is None else Measurement(metric_defs.get(name).unit, float(value))


def summary_values(measurements: Mapping[str, Measurement]) -> dict[str, float | None]:
    """Headline numbers only (for pytest-benchmark's extra_info and report rows)."""
    return {name: m.value for name, m in measurements.items()}
