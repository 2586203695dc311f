"""What a run found, one row per optimization: its speed against its reference (with the interval
where the reference ran in the same rounds), its memory, its fidelity and its task accuracy, and a
sentence that says it in words; the pick, and the speed x memory x fidelity front. The terminal's
table (findings_table.py) and the HTML report both read it; which family a record is, families.py.

Pure: records (as read, typed) in, findings out. Which reference a row is judged against:

- a case measured with ``reference=`` (quantized variants, KV caches, compositions): that engine,
  round by round, ``speedup_vs_reference`` with its 95% interval;
- a speculative case: its own target without drafting, round by round (``speculative_speedup``);
- anything else (batching engines, servers, parallel layouts): the run's case of the same model,
  workload and load without the optimization, if the run has one: a ratio of two cases measured
  minutes apart, marked unpaired (``~``) and given no interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from pytest_inferlab.judge.front import Objective
from pytest_inferlab.judge.front import pareto_front as front_of
from pytest_inferlab.judge.verdict import mcnemar
from pytest_inferlab.measure.exactness import EXACT, Exactness
from pytest_inferlab.record.record import Record, exactness_checks
from pytest_inferlab.outputs.families import (BATCHING, COMPOSITION, FAMILY_ORDER, KV, LATENCY, PARALLEL, QUANT,
                                              SERVING, SPECULATIVE, family_of, named, optimization_label)

MiB = 2**20
WEIGHTLESS_DRAFTING = ("prompt-lookup", "early-exit")  # drafting methods that load no draft model


@dataclass(frozen=True, slots=True)
class Speed:
    """Output tokens/s of the case as a multiple of its reference's."""

    ratio: float
    interval: tuple[float, float] | None  # 95%, from paired rounds; None when unpaired
    against: str  # what the reference is, in words

    @property
    def paired(self) -> bool:
        return self.interval is not None

    def cell(self) -> str:
        if self.interval is None:
            return f"~{self.ratio:.2f} unpaired"
        return f"{self.ratio:.2f} [{self.interval[0]:.2f}, {self.interval[1]:.2f}]"

    def words(self) -> str:
        if self.interval is None:
            return f"~{self.ratio:.2f}x the tokens/s of {self.against} (another case, unpaired: no interval)"
        low, high = self.interval
        if low > 1:
            return f"{self.ratio:.2f}x faster than {self.against} (95% interval {low:.2f}-{high:.2f})"
        if high < 1:
            return f"{1 / self.ratio:.2f}x slower than {self.against} (95% interval {low:.2f}-{high:.2f}x)"
        return f"no clear speed difference from {self.against} ({self.ratio:.2f}x, interval {low:.2f}-{high:.2f} spans 1)"


@dataclass(frozen=True, slots=True)
class Finding:
    """One optimization of a run, against its reference."""

    test_id: str
    family: str
    optimization: str
    tok_per_s: float | None
    speed: Speed | None
    peak_mib: float | None
    memory: str  # the optimization's own memory effect, e.g. "weights x0.21"
    memory_ratio: float | None  # that effect as a multiple of the reference's bytes (the Pareto axis)
    fidelity: str
    agreement: float | None  # 0..1: greedy tokens / top-1 predictions the same as the reference's
    accuracy: str
    failed: bool = False  # the case's own checks failed (e.g. inexact drafting): shown, never on a front
    drafting: Speed | None = None  # a composition's drafting alone, over its own (optimized) target
    tails: str = ""  # the tail latencies with their intervals, e.g. "TTFT p90 81 ms [78, 95]"


    def words(self) -> str:
        """What was found, in one sentence."""
        if self.family == LATENCY:
            return (f"{self.optimization}: {self.tok_per_s or 0:.1f} output tok/s, the plain model the optimizations "
                    "are compared with" + (f"; {self.tails}" if self.tails else ""))
        parts = [self.speed.words() if self.speed else "no reference in this run to compare its speed with"]
        if self.tails:
            parts.append(self.tails)
        if self.drafting:
            parts.append(f"the drafting alone: {self.drafting.words()}")
        if self.memory:
            parts.append(self.memory)
        if self.fidelity not in ("", "-"):
            parts.append(self.fidelity)
        if self.accuracy not in ("", "-"):
            parts.append(self.accuracy)
        return f"{self.optimization}: " + "; ".join(parts)


PICK_AGREEMENT = 0.9  # the least top-1 / token agreement with the reference a pick may have


def pick(findings: Sequence[Finding]) -> Finding | None:
    """The fastest quantized variant (paired speed, not failed) that keeps at least PICK_AGREEMENT of
    the reference's top-1 predictions: what a user of this model on this machine should try first."""
    fit = [f for f in findings if f.family == QUANT and f.speed is not None and f.speed.paired and not f.failed
           and f.agreement is not None and f.agreement >= PICK_AGREEMENT]
    return max(fit, key=lambda f: f.speed.ratio, default=None)


def pick_words(findings: Sequence[Finding]) -> str | None:
    """The pick in one sentence (None when no quantized variant qualifies)."""
    best = pick(findings)
    if best is None:
        return None
    low, high = best.speed.interval
    return (f"{best.optimization}, {best.speed.ratio:.2f}x the tokens/s of {best.speed.against} (95% {low:.2f}-"
            f"{high:.2f}), {best.memory or 'memory not measured'}, {best.fidelity}: the fastest quantization "
            f"keeping at least {PICK_AGREEMENT:.0%} top-1 agreement with the reference on this machine")


def _shape(record: Record) -> tuple[Any, ...]:
    spec = record.spec
    workload = spec.get("workload") or {}
    return ((spec.get("model") or {}).get("name"), workload.get("name"), spec.get("batch_size", 1), spec.get("device"))


def _plain_reference(record: Record, family: str, records: Sequence[Record]) -> Record | None:
    """The run's case without the optimization, for families that carry no paired reference."""
    spec = record.spec
    for other in records:
        if other is record or other.value("output_tok_per_s") is None:
            continue
        other_spec = other.spec
        if other_spec.get("measure", "latency") != "latency" or family_of(other) not in (LATENCY, BATCHING):
            continue
        if family in (BATCHING, SERVING):  # the same arrivals, one request at a time
            if ((other_spec.get("batching") or {}).get("kind") == "sequential"
                    and other_spec.get("load") == spec.get("load")
                    and _shape(other) == _shape(record)):
                return other
        elif family_of(other) == LATENCY and _shape(other) == _shape(record):
            return other
    return None


def _speed(record: Record, family: str, records: Sequence[Record]) -> Speed | None:
    # A drafting case's own speed is over its target undrafted; any other case's (a composition's too:
    # its drafting alone is Finding.drafting) is over the reference it was measured with.
    candidates = [("speedup_vs_reference", None)]
    if family == SPECULATIVE:
        candidates.append(("speculative_speedup", "the target without drafting"))
    for name, against in candidates:
        found = record.measurements.get(name)
        if found is not None and found.value is not None and found.ci95:
            if against is None:
                ref = (record.conditions.get("compared_to") or {}).get("reference") or {}
                against = _reference_words(ref)
            return Speed(found.value, (found.ci95[0], found.ci95[1]), against)
    if family == SPECULATIVE and record.value("speculative_speedup") is not None:
        return Speed(record.value("speculative_speedup"), None, "the target without drafting")
    plain = _plain_reference(record, family, records)
    mine = record.value("output_tok_per_s")
    if plain is None or not mine:
        return None
    theirs = plain.value("output_tok_per_s")
    return Speed(mine / theirs, None, optimization_label(plain, family_of(plain))) if theirs else None


def _drafting_alone(record: Record) -> Speed | None:
    """A drafted composition's ``speculative_speedup``: what the drafting adds to its optimized target
    (beside the combined effect against the plain model, which is the row's speed)."""
    found = record.measurements.get("speculative_speedup")
    if found is None or found.value is None or not record.spec.get("speculative"):
        return None
    interval = (found.ci95[0], found.ci95[1]) if found.ci95 else None
    return Speed(found.value, interval, "its target without drafting (same rounds)")


def _reference_words(ref: Mapping[str, Any]) -> str:
    parts = [ref.get("model") or "the reference"]
    if ref.get("quant"):
        parts.append(named(ref["quant"], "method") or "")
    if ref.get("kv_cache"):
        parts.append(f"{named(ref['kv_cache'], 'kind')} KV cache")
    return " ".join(parts) + " (same rounds)"


def _memory(record: Record, family: str, records: Sequence[Record]) -> tuple[str, float | None]:
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
              if family_of(o) == LATENCY and _shape(o) == _shape(record) and o.value("kv_bytes_per_token")), None)
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


def _fidelity(record: Record, family: str) -> tuple[str, float | None]:
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
        parts.append(_exactness_words(claim, check))
        agreement.append(1.0 if check.lossless else 0.0)
    if family == LATENCY:
        return "the reference itself", 1.0
    return (", ".join(parts) or "-"), (min(agreement) if agreement else None)


def _exactness_words(claim: str, check: Exactness) -> str:
    """A check in the table's few words: drafting against its target, batching against sequential decoding."""
    whose = "the target's" if claim == "drafting" else "sequential decoding's"
    if check.state == EXACT:
        return f"output exactly {whose}"
    if check.lossless:
        margin = check.mismatch.tie_margin_nats if check.mismatch else None
        return f"output {whose} up to a near tie ({margin:.2f} nats, batch rounding)"
    return f"output NOT {whose}"


def _accuracy(record: Record) -> str:
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


def finding_of(record: Record, records: Sequence[Record]) -> Finding | None:
    """The record's finding; None for records that measure something else (the harness, a sweep)."""
    if record.spec.get("measure", "latency") != "latency":
        return None
    family = family_of(record)
    peak = record.value("peak_mem_bytes")
    memory, memory_ratio = _memory(record, family, records)
    fidelity, agreement = _fidelity(record, family)
    failed = any(not check.lossless for check in exactness_checks(record.conditions).values())
    return Finding(record.test_id, family, optimization_label(record, family),
                   record.value("output_tok_per_s"), _speed(record, family, records),
                   peak / MiB if peak else None, memory, memory_ratio, fidelity, agreement, _accuracy(record),
                   failed=failed, drafting=_drafting_alone(record) if family == COMPOSITION else None,
                   tails=tail_words(record))


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


def findings_of(records: Iterable[Record]) -> list[Finding]:
    """Every finding of a run, family by family in the tour's order."""
    records = list(records)
    found = [f for f in (finding_of(r, records) for r in records) if f is not None]
    return sorted(found, key=lambda f: (FAMILY_ORDER.index(f.family), f.test_id))


@dataclass(frozen=True, slots=True)
class FrontPoint:
    """A finding on the speed x memory x fidelity plane (every axis a multiple of its reference's)."""

    finding: Finding
    speed: float
    memory: float
    agreement: float


def front_points(findings: Sequence[Finding]) -> tuple[list[FrontPoint], list[Finding]]:
    """(points with all three axes known, findings left out). The plain model is the point (1, 1, 1)."""
    points, left_out = [], []
    for f in findings:
        if f.family == LATENCY:
            points.append(FrontPoint(f, 1.0, 1.0, 1.0))
        elif f.speed is not None and f.memory_ratio is not None and f.agreement is not None and not f.failed:
            points.append(FrontPoint(f, f.speed.ratio, f.memory_ratio, f.agreement))
        else:
            left_out.append(f)
    return points, left_out


# faster, smaller, more faithful than the plain model (judge/front.py)
FRONT_OBJECTIVES: tuple[Objective[FrontPoint], ...] = (
    Objective(lambda p: p.speed), Objective(lambda p: p.memory, maximize=False), Objective(lambda p: p.agreement))


def pareto_front(points: Sequence[FrontPoint]) -> list[FrontPoint]:
    """Points no other point beats on every axis: at least as fast, as small and as faithful, and
    strictly better on one."""
    return front_of(points, FRONT_OBJECTIVES)
