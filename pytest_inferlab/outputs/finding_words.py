"""The words of a finding's columns: the optimization's own memory effect, its fidelity to the
reference (KLD, top-1, token agreement, the exactness of a speed-only claim), its task accuracy with
the paired item test, and the tail latencies with their intervals (findings.py assembles the row)."""

from __future__ import annotations

from typing import Sequence

from pytest_inferlab.judge.verdict import mcnemar
from pytest_inferlab.measure.exactness import EXACT, Exactness
from pytest_inferlab.outputs.families import LATENCY, case_shape, family_of
from pytest_inferlab.record.record import Record, exactness_checks

MiB = 2**20
WEIGHTLESS_DRAFTING = ("prompt-lookup", "early-exit")  # drafting methods that load no draft model


def memory_words(record: Record, family: str, records: Sequence[Record]) -> tuple[str, float | None]:
    values = {name: m.value for name, m in record.measurements.items()}
    ref = (record.conditions.get("compared_to") or {}).get("reference") or {}
    parts, ratio = [], None
    spec = record.spec
    if (spec.get("model") or {}).get("quant") and values.get("model_bytes") and ref.get("model_bytes"):
        ratio = values["model_bytes"] / ref["model_bytes"]
        parts.append(f"weights x{ratio:.2f} ({values['model_bytes'] / MiB:.0f} MiB)")
    kv = spec.get("kv_cache")
    if kv and kv.get("kind") != "dynamic" and values.get("kv_bytes_per_token"):
        dynamic = ref.get("kv_bytes_per_token") or next(
            (o.value("kv_bytes_per_token") for o in records
              if family_of(o) == LATENCY and case_shape(o) == case_shape(record) and o.value("kv_bytes_per_token")), None)
        if dynamic:
            kv_ratio = values["kv_bytes_per_token"] / dynamic
            parts.append(f"KV cache x{kv_ratio:.2f} per token")
            ratio = kv_ratio if ratio is None else ratio
        else:
            parts.append(f"KV cache {values['kv_bytes_per_token'] / 1024:.1f} KiB per token")
    drafting = spec.get("speculative") or {}
    if drafting.get("method") in WEIGHTLESS_DRAFTING and ratio is None and not (spec.get("model") or {}).get("quant"):
        parts.append("no extra weights")
        ratio = 1.0
    ranks = (record.conditions.get("parallel") or {}).get("peak_rss_bytes_per_rank")
    if ranks:
        parts.append(f"{len(ranks)} ranks, {max(ranks) / MiB:.0f} MiB peak each")
    return ", ".join(parts), ratio


def fidelity_words(record: Record, family: str) -> tuple[str, float | None]:
    values = {name: m.value for name, m in record.measurements.items()}
    parts, agreement = [], []
    if values.get("kld_mean") is not None:
        parts.append(f"KLD {values['kld_mean']:.3g}")
    if values.get("top1_agreement") is not None:
        parts.append(f"top-1 {values['top1_agreement']:.2f}")
        agreement.append(values["top1_agreement"])
    if values.get("kv_token_agreement") is not None:
        parts.append(f"tokens {values['kv_token_agreement']:.0%} as the dynamic cache's")
        agreement.append(values["kv_token_agreement"])
    for claim, check in exactness_checks(record.conditions).items():
        parts.append(exactness_words(claim, check))
        agreement.append(1.0 if check.lossless else 0.0)
    if family == LATENCY:
        return "the reference itself", 1.0
    return (", ".join(parts) or "-"), (min(agreement) if agreement else None)


def exactness_words(claim: str, check: Exactness) -> str:
    """A check in the table's few words: drafting against its target, batching against sequential decoding."""
    whose = "the target's" if claim == "drafting" else "sequential decoding's"
    if check.state == EXACT:
        return f"output exactly {whose}"
    if check.lossless:
        margin = check.mismatch.tie_margin_nats if check.mismatch else None
        return f"output {whose} up to a near tie ({margin:.2f} nats, batch rounding)"
    return f"output NOT {whose}"


def accuracy_words(record: Record) -> str:
    evals = record.evals
    reference = ((record.conditions.get("reference_evals") or {}).get("tasks")) or {}
    cells = []
    for task, result in sorted(evals.items()):
        metrics = result.get("metrics") or {}
        name = "acc" if "acc" in metrics else next(iter(sorted(metrics)), None)
        if name is None or metrics[name] is None:
            continue
        cell = f"{task} {name} {metrics[name]:.3f}"
        ref = reference.get(task) or {}
        ref_value = (ref.get("metrics") or {}).get(name)
        if ref_value is not None:
            cell += f" vs {ref_value:.3f}"
            items, ref_items = result.get("items"), ref.get("items")
            if items and ref_items and len(items) == len(ref_items):
                lost, gained, p = mcnemar(ref_items, items)
                cell += f" (-{lost}/+{gained} items, p={p:.2f})"
        cells.append(cell)
        break  # one task's headline: the first that scores accuracy
    return "; ".join(cells) or "-"


def tail_words(record: Record) -> str:
    """TTFT's p90 and p99 with their 95% intervals (the rounds' correlation counted); a bound the
    data cannot give reads as open ("[78, -)")."""
    ttft = record.measurements.get("ttft_ms")
    if ttft is None:
        return ""
    cells = []
    for q, value, interval in (("p90", ttft.p90, ttft.p90_ci95), ("p99", ttft.p99, ttft.p99_ci95)):
        if value is not None and interval:
            low, high = (f"{bound:.0f}" if bound is not None else "-" for bound in interval)
            cells.append(f"TTFT {q} {value:.0f} ms [{low}, {high}]")
    return ", ".join(cells)
