"""How each metric is judged against its baseline: kind, direction and tolerance.

Kinds: ``timing`` (noisy: statistical interval against the baseline's run history),
``memory`` (deterministic relative tolerance), ``count`` (any increase is worse) and ``info``
(recorded, never judged). Defaults below; overrides per project (ini ``inferlab_tolerance``) and
per test (``@pytest.mark.inferlab(tolerance={...})``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

from pytest_inferlab.measure.metrics import metric_defs

KINDS = ("timing", "memory", "count", "info")


@dataclass(frozen=True, slots=True)
class MetricPolicy:
    name: str
    kind: str
    higher_is_better: bool
    tolerance: float  # relative: 0.05 = a 5% change in the bad direction is still acceptable


_DEFAULTS: dict[str, tuple[str, float]] = {
    "ttft_ms": ("timing", 0.05),
    "tpot_ms": ("timing", 0.05),
    "e2e_ms": ("timing", 0.05),
    "itl_p25_ms": ("timing", 0.05),
    "output_tok_per_s": ("timing", 0.05),
    "goodput_req_per_s": ("timing", 0.05),
    "energy_j": ("timing", 0.10),
    "tok_per_j": ("timing", 0.10),
    "peak_mem_bytes": ("memory", 0.05),
    "peak_mem_reserved_bytes": ("memory", 0.05),
    "model_bytes": ("memory", 0.0),
    "kv_cache_bytes": ("memory", 0.05),
    "kv_bytes_per_token": ("memory", 0.05),
    "kv_token_agreement": ("memory", 0.01),
    "kv_kld_mean": ("memory", 0.10),
    "failed_requests": ("count", 0.0),
    # fidelity is deterministic for fixed weights and text: a tolerance, no statistics
    "kld_mean": ("memory", 0.10),
    "top1_agreement": ("memory", 0.01),
    "ppl": ("memory", 0.01),
    "inferlab_ppl.word_perplexity": ("memory", 0.01),
    # multiple-choice accuracy is judged item by item (McNemar, session.judge), not by a tolerance
}


def default_policy(name: str) -> MetricPolicy:
    """The built-in policy of a metric; metrics without one are ``info`` (never judged)."""
    definition = metric_defs.get(name) if name in metric_defs else None
    kind, tolerance = _DEFAULTS.get(name, ("info", 0.0))
    return MetricPolicy(name, kind, definition.higher_is_better if definition else False, tolerance)


def parse_tolerances(text: str, source: str) -> dict[str, float]:
    """``"tpot_ms=0.03 ttft_ms=0.2"`` (spaces, commas or new lines) -> {metric: tolerance}."""
    out: dict[str, float] = {}
    for item in text.replace(",", " ").split():
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{source}: {item!r} is not METRIC=TOLERANCE (e.g. tpot_ms=0.05)")
        out[name] = _fraction(value, f"{source}: {name}")
    return out


def _fraction(value: object, where: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{where}={value!r} is not a number; expected a fraction such as 0.05") from None
    if not 0.0 <= number < 10.0:
        raise ValueError(f"{where}={number}: expected a relative tolerance >= 0 (0.05 = 5%)")
    return number


def policies_for(names: list[str], project: Mapping[str, float], test: Mapping[str, object]) -> dict[str, MetricPolicy]:
    """Policies for ``names``: test overrides beat project overrides beat defaults."""
    unknown = sorted(set(project) - set(metric_defs.names())) + sorted(set(test) - set(metric_defs.names()))
    if unknown:
        raise ValueError(f"tolerance for unknown metric(s) {unknown}; known: {', '.join(metric_defs.names())}")
    policies = {}
    for name in names:
        policy = default_policy(name)
        if name in project or name in test:
            value = _fraction(test.get(name, project.get(name)), f"tolerance {name}")
            policy = dataclasses.replace(policy, tolerance=value, kind="timing" if policy.kind == "info" else policy.kind)
        policies[name] = policy
    return policies
