"""Speculative measurements from paired rounds (with and without drafting) and the drafting
counts: pure functions, no I/O."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any, Sequence

from pytest_inferlab.measure.metrics import Measurement, bootstrap_median_ci, window_s
from pytest_inferlab.ground.trace import RoundTrace


def _outputs(round_: RoundTrace) -> dict[int, tuple[int, ...]]:
    return {r.index: r.output_ids for r in round_.requests if r.ok}


def unigram_tv(reference: Sequence[RoundTrace], drafted: Sequence[RoundTrace]) -> float | None:
    """Total variation between the token-frequency distributions of the two outputs (sampling:
    tokens differ by design, their distribution must not)."""
    ref = Counter(t for r in reference for ids in _outputs(r).values() for t in ids)
    spec = Counter(t for r in drafted for ids in _outputs(r).values() for t in ids)
    n_ref, n_spec = sum(ref.values()), sum(spec.values())
    if not n_ref or not n_spec:
        return None
    return min(1.0, 0.5 * sum(abs(ref[t] / n_ref - spec[t] / n_spec) for t in ref.keys() | spec.keys()))


def speculative_measurements(reference: Sequence[RoundTrace], drafted: Sequence[RoundTrace], usages: Sequence[Any],
                             seed: int) -> dict[str, Measurement]:
    """acceptance_rate, tokens_per_target_forward, draft_cost_share, target_forwards,
    speculative_speedup (median over interleaved pairs of the windows' ratio, bootstrap 95% CI) and
    the target's own output tok/s."""
    tokens = sum(r.output_tokens for t in drafted for r in t.requests if r.ok)
    forwards = sum(u.target_forwards for u in usages)
    proposed = sum(u.proposed for u in usages)
    out: dict[str, Measurement] = {"target_forwards": Measurement("forwards", float(forwards))}
    if forwards:
        out["tokens_per_target_forward"] = Measurement("tokens", tokens / forwards)
    if proposed:
        out["acceptance_rate"] = Measurement("fraction", (tokens - forwards) / proposed)
    seconds = sum(u.seconds for u in usages)
    if seconds:
        out["draft_cost_share"] = Measurement("fraction", sum(u.draft_s for u in usages) / seconds)
    ratios = tuple(window_s(r) / window_s(s) for r, s in zip(reference, drafted) if window_s(s) > 0)
    if ratios:
        median = statistics.median(ratios)
        out["speculative_speedup"] = Measurement("x", median, ratios, statistics.fmean(ratios), median,
                                                 ci95=bootstrap_median_ci(ratios, seed))
    ref_tokens = [sum(q.output_tokens for q in r.requests if q.ok) for r in reference]
    windows = [window_s(r) for r in reference]
    if sum(windows) > 0:
        out["target_output_tok_per_s"] = Measurement("tok/s", sum(ref_tokens) / sum(windows),
                                                     tuple(n / w for n, w in zip(ref_tokens, windows) if w > 0))
    return out
