"""One catalog of metric facts: unit, direction, how the gate judges it, and its default tolerance.

Metric names carry their units (``ttft_ms``, ``peak_mem_bytes``; docs/reference/metrics.md defines each).
Kinds: ``timing`` (noisy: a statistical interval against the baseline's run history),
``deterministic`` (the same weights and text give the same value: a relative tolerance, no
statistics; bytes, fidelity, token agreement), ``count`` (any increase is worse) and ``info``
(recorded, never judged). lm-eval task scores ``<task>.<metric>`` take their direction from the
metric's name (``acc`` up, ``word_perplexity`` down). A project adds a metric with ``define``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_inferlab.registry import Registry

TIMING, DETERMINISTIC, COUNT, INFO = "timing", "deterministic", "count", "info"
KINDS = (TIMING, DETERMINISTIC, COUNT, INFO)
# lm-eval metric name -> higher is better, for task scores recorded as ``<task>.<metric>``
EVAL_DIRECTIONS = {"acc": True, "acc_norm": True, "exact_match": True, "word_perplexity": False,
                   "byte_perplexity": False, "bits_per_byte": False}


@dataclass(frozen=True, slots=True)
class MetricFacts:
    """Everything the lab knows about one metric."""

    name: str
    unit: str
    higher_is_better: bool
    help: str
    kind: str = INFO
    tolerance: float = 0.0  # relative: 0.05 = a 5% change in the bad direction is still acceptable


catalog: Registry[MetricFacts] = Registry("metrics")


def define(name: str, unit: str, higher_is_better: bool, help: str, kind: str = INFO, tolerance: float = 0.0) -> None:
    if kind not in KINDS:
        raise ValueError(f"metric {name}: kind {kind!r} is not one of {', '.join(KINDS)}")
    catalog.register(name, MetricFacts(name, unit, higher_is_better, help, kind, tolerance))


def facts_of(name: str) -> MetricFacts | None:
    """The facts of ``name``; task scores (``<task>.<metric>``) not in the catalog are derived from
    their lm-eval metric name; None for a name the lab does not know."""
    if name in catalog:
        return catalog.get(name)
    task, _, metric = name.rpartition(".")
    if task and metric in EVAL_DIRECTIONS:
        return MetricFacts(name, "score", EVAL_DIRECTIONS[metric], f"lm-eval task {task}: {metric}")
    return None


def unit_of(name: str) -> str:
    facts = facts_of(name)
    if facts is None:
        raise KeyError(f"metric {name!r} is not in the catalog (measure/catalog.py): define it first")
    return facts.unit


define("ttft_ms", "ms", False, "time to first token: first delivery - send", TIMING, 0.05)
define("tpot_ms", "ms", False, "time per output token after the first: (e2e - ttft) / (N - 1), requests with N > 1", TIMING, 0.05)
define("itl_ms", "ms", False, "inter-token latency: every gap between successive deliveries, pooled")
define("itl_p25_ms", "ms", False, "lower quartile of the inter-token latencies: decode speed as least disturbed "
        "by the host, the gate's most sensitive timing series", TIMING, 0.05)
define("e2e_ms", "ms", False, "end-to-end latency: last delivery - send", TIMING, 0.05)
define("tokens_per_delivery", "tokens", True, "tokens carried by one delivery (1 unless speculative or chunked)")
define("input_tokens", "tokens", True, "prompt length per request")
define("output_tok_per_s", "tok/s", True, "output tokens / measured window", TIMING, 0.05)
define("total_tok_per_s", "tok/s", True, "(input + output tokens) / measured window")
define("req_per_s", "req/s", True, "completed requests / measured window")
define("goodput_req_per_s", "req/s", True, "requests meeting every SLO / measured window", TIMING, 0.05)
define("queue_ms", "ms", False, "time a request waited between arriving and the engine taking it in (under an "
        "arrival process; part of its TTFT)")
define("client_lag_ms", "ms", False, "a load client's own lateness: when it sent a request minus when the request "
        "was due (part of TTFT; a case whose client fell behind is invalid)")
define("server_running_max", "requests", False, "the server's own count of requests running, highest over the "
        "case's /metrics samples")
define("server_waiting_max", "requests", False, "the server's own count of requests waiting (queued), highest over "
        "the case's /metrics samples")
define("server_kv_cache_usage_max", "fraction", False, "the server's KV-cache usage (0-1), highest over the case's "
        "/metrics samples")
define("server_prefix_cache_hit_rate", "fraction", True, "the server's prefix-cache hits / queries over the case "
        "(SGLang: its hit-rate gauge, mean)")
define("prefix_cache_hit_rate", "fraction", True, "prompt tokens the engine took from its prefix cache / prompt "
       "tokens, over requests whose engine reports it (a server's usage.prompt_tokens_details.cached_tokens, the "
       "in-process engines' own count)")
define("ttft_first_turn_ms", "ms", False, "multi-turn sessions: TTFT of each session's first turn")
define("ttft_later_turns_ms", "ms", False, "multi-turn sessions: TTFT of the later turns (the history resent; a "
       "prefix cache makes these shorter)")
define("server_spec_acceptance_rate", "fraction", True, "the server's accepted / drafted speculative tokens over "
        "the case")
define("slo_attainment", "fraction", True, "share of requests meeting every configured SLO (failed ones do not)")
define("offered_req_per_s", "req/s", True, "arrival rate the load generator delivered (open loop; the schedule's "
        "rate when it kept up)")
define("saturation_req_per_s", "req/s", True, "highest arrival rate of a sweep whose SLO attainment reached the "
        "target with the load generator keeping its schedule")
define("capacity_req_per_s", "req/s", True, "completed requests/s of the sweep's closed loop at the engine's "
        "largest batch: what the engine can do when never idle")
define("acceptance_rate", "fraction", True, "speculative: drafted tokens the target accepted / drafted tokens "
        "proposed (accepted = output tokens - target forwards)")
define("tokens_per_target_forward", "tokens", True, "speculative: output tokens per target forward pass (forwards "
        "counted by a hook, not inferred); 1 without drafting")
define("target_forwards", "forwards", False, "speculative: target forward passes over the measured rounds")
define("draft_cost_share", "fraction", False, "speculative: share of generate time spent drafting (candidate "
        "generation: n-gram search or draft-model forwards)")
define("speculative_speedup", "x", True, "speculative: median over interleaved round pairs of the target's own "
        "window / the drafted window (same requests, same run)")
define("speedup_vs_reference", "x", True, "output tokens/s of the case / of its reference (measure(reference=...)), "
       "geometric mean over interleaved round pairs, with its 95% interval (ci95)")
define("target_output_tok_per_s", "tok/s", True, "speculative: output tokens/s of the same target without "
        "drafting, in the interleaved rounds")
define("sampled_unigram_tv", "fraction", False, "speculative under sampling: total variation between the token "
        "frequencies of drafted and undrafted outputs (tokens differ by design; their distribution must not)")
define("failed_requests", "requests", False, "requests that ended with ok=False", COUNT, 0.0)
define("peak_mem_bytes", "B", False, "peak RSS (CPU) or torch peak allocated (CUDA) during the case", DETERMINISTIC, 0.05)
define("peak_mem_per_rank_bytes", "B", False, "tensor parallel on CPU: peak RSS of each rank (samples per rank; "
        "headline the median)")
define("peak_mem_reserved_bytes", "B", False, "torch peak reserved memory (CUDA)", DETERMINISTIC, 0.05)
define("model_bytes", "B", False, "bytes of weights and buffers, tied tensors once", DETERMINISTIC, 0.0)
define("energy_j", "J", False, "device energy counter delta over the timed rounds (whole device)", TIMING, 0.1)
define("tok_per_j", "tok/J", True, "output tokens per joule", TIMING, 0.1)
define("kld_mean", "nats", False, "mean KL divergence of next-token distributions, reference || variant, on the fidelity text", DETERMINISTIC, 0.1)
define("kld_mean_se", "nats", False, "standard error of kld_mean by batch means over blocks of 64 consecutive "
       "positions (neighbouring positions are correlated): a non-inferiority bound on kld_mean uses it")
define("kld_p99", "nats", False, "99th percentile of the per-position KL divergence")
define("fidelity_positions", "positions", True, "positions of the fidelity text scored: the sample size behind "
       "top1_agreement and kld_mean (a non-inferiority bound on top-1 agreement counts them)")
define("top1_agreement", "fraction", True, "positions where variant and reference rank the same next token first", DETERMINISTIC, 0.01)
define("ppl", "ppl", False, "perplexity of the fidelity text under the model", DETERMINISTIC, 0.01)
define("ppl_delta_pct", "%", False, "perplexity change vs the unquantized reference")
define("kv_cache_bytes", "B", False, "bytes the KV cache held at the end of the case's last generate call "
        "(every tensor of the cache object: keys, values, quantized payloads, scales, residuals)", DETERMINISTIC, 0.05)
define("kv_bytes_per_token", "B", False, "kv_cache_bytes / (positions the cache covers x batch rows); a static "
        "cache counts its pre-allocated length", DETERMINISTIC, 0.05)
define("kv_token_agreement", "fraction", True, "greedy output positions equal to the dynamic cache's for the "
        "same requests (lossy caches drift; a lossless one must be 1)", DETERMINISTIC, 0.01)
define("kv_kld_mean", "nats", False, "mean KL divergence of the decode steps' next-token distributions with this "
        "cache vs the same tokens without a cache (first request of the workload, greedy)", DETERMINISTIC, 0.1)
define("decode_gb_per_s", "GB/s", True, "weight bytes read per second by decode steps: model_bytes / TPOT")
define("mem_copy_gb_per_s", "GB/s", True, "measured copy bandwidth of the device (read + write), the memory-bound limit")
define("decode_bw_fraction", "fraction", True, "decode_gb_per_s / mem_copy_gb_per_s: how close decoding runs to the limit")
define("inferlab_mc.acc", "fraction", True, "accuracy on the shipped 120-item multiple-choice task (lm-eval)")
define("inferlab_ppl.word_perplexity", "ppl", False, "word perplexity of the shipped report text (lm-eval, rolling)", DETERMINISTIC, 0.01)
define("inferlab_ppl.byte_perplexity", "ppl", False, "byte perplexity of the shipped report text (lm-eval, rolling)")
define("inferlab_ppl.bits_per_byte", "bits", False, "bits per byte of the shipped report text (lm-eval, rolling)")
define("bare_output_tok_per_s", "tok/s", True, "output tokens/s of a bare model.generate loop (self-measurement)")
define("harness_overhead_pct", "%", False, "tokens/s lost by the recording path vs a bare generate loop (interleaved)")
define("harness_cost_pct", "%", False, "time in the recording path's own code (timed in isolation) / round time")
