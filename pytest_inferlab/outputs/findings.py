"""What a run found, one row per optimization: its speed against its reference (with the interval
where the reference ran in the same rounds), its memory, its fidelity and its task accuracy, and a
sentence that says it in words. Which family a record is: families.py; the words of the memory,
fidelity, accuracy and tail columns: finding_words.py; the pick and the speed x memory x fidelity
front: decisions.py. The terminal's table (findings_table.py) and the HTML report read them.

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

from pytest_inferlab.outputs.families import (BATCHING, COMPOSITION, FAMILY_ORDER, LATENCY, SERVING, SPECULATIVE,
                                              case_shape, family_of, named, optimization_label)
from pytest_inferlab.outputs.finding_words import (MiB, accuracy_words, fidelity_words, memory_words,
                                                   tail_words)
from pytest_inferlab.record.record import Record, exactness_checks


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
                    and case_shape(other) == case_shape(record)):
                return other
        elif family_of(other) == LATENCY and case_shape(other) == case_shape(record):
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


def finding_of(record: Record, records: Sequence[Record]) -> Finding | None:
    """The record's finding; None for records that measure something else (the harness, a sweep)."""
    if record.spec.get("measure", "latency") != "latency":
        return None
    family = family_of(record)
    peak = record.value("peak_mem_bytes")
    memory, memory_ratio = memory_words(record, family, records)
    fidelity, agreement = fidelity_words(record, family)
    failed = any(not check.lossless for check in exactness_checks(record.conditions).values())
    return Finding(record.test_id, family, optimization_label(record, family),
                   record.value("output_tok_per_s"), _speed(record, family, records),
                   peak / MiB if peak else None, memory, memory_ratio, fidelity, agreement, accuracy_words(record),
                   failed=failed, drafting=_drafting_alone(record) if family == COMPOSITION else None,
                   tails=tail_words(record))


def findings_of(records: Iterable[Record]) -> list[Finding]:
    """Every finding of a run, family by family in the tour's order."""
    records = list(records)
    found = [f for f in (finding_of(r, records) for r in records) if f is not None]
    return sorted(found, key=lambda f: (FAMILY_ORDER.index(f.family), f.test_id))


