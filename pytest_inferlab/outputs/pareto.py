"""The quantization trade-off of a run: speed vs fidelity vs bytes, its Pareto front, a table and a PNG.

A variant is on the front when no other variant of the same batch size is at least as fast, at
least as faithful (KLD) and at least as small, and strictly better in one of them. Accuracy on the
multiple-choice task is compared with the unquantized variant item by item (exact McNemar).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from pytest_inferlab.outputs.plots import pyplot, save_png, table_and_plot
from pytest_inferlab.judge.front import Objective
from pytest_inferlab.judge.front import pareto_front as front_of
from pytest_inferlab.judge.verdict import mcnemar
from pytest_inferlab.record.record import Record

MC_TASK = "inferlab_mc"


@dataclass(frozen=True, slots=True)
class Point:
    method: str
    batch_size: int
    tok_per_s: float
    model_bytes: float
    kld_mean: float  # 0 for the reference itself
    top1: float | None
    acc: float | None
    items: tuple[bool, ...] | None
    decode_bw_fraction: float | None
    paired_speed: tuple[float, float, float] | None = None  # ratio to its reference and 95% interval (paired rounds)


def points_from_records(records: Iterable[Record]) -> list[Point]:
    """One point per record of a quantized variant alone (records without ``spec.model.quant``, and
    compositions with drafting or a KV cache, are not). The records as read (record/run_folder.py:
    load_run checks every one, naming the file it cannot read)."""
    points = []
    for record in records:
        spec = record.spec
        quant = (spec.get("model") or {}).get("quant")
        values = {name: m.value for name, m in record.measurements.items()}
        if not quant or values.get("output_tok_per_s") is None or values.get("model_bytes") is None:
            continue
        if spec.get("speculative") or spec.get("kv_cache"):
            continue  # a composition: its speed is not the variant's own (the findings show it)
        items = (record.evals.get(MC_TASK) or {}).get("items")
        speedup = record.measurements.get("speedup_vs_reference")
        paired = (speedup.value, *speedup.ci95) if speedup is not None and speedup.ci95 else None
        points.append(Point(quant["method"], int(spec.get("batch_size", 1)), values["output_tok_per_s"],
                            values["model_bytes"], values.get("kld_mean") or 0.0, values.get("top1_agreement"),
                            values.get(f"{MC_TASK}.acc"), tuple(items) if items is not None else None,
                            values.get("decode_bw_fraction"), paired))
    return points


# faster, more faithful, smaller: within one batch size (judge/front.py)
OBJECTIVES: tuple[Objective[Point], ...] = (Objective(lambda p: p.tok_per_s),
                                            Objective(lambda p: p.kld_mean, maximize=False),
                                            Objective(lambda p: p.model_bytes, maximize=False))


def pareto_front(points: list[Point]) -> set[Point]:
    """The variants on the front of their own batch size."""
    return {p for size in {q.batch_size for q in points}
            for p in front_of([q for q in points if q.batch_size == size], OBJECTIVES)}


def _reference(points: list[Point], batch_size: int) -> Point | None:
    return next((p for p in points if p.method == "fp32" and p.batch_size == batch_size), None)


def speed_cell(p: Point, ref: Point | None) -> str:
    """The speed ratio to fp32: paired in the same rounds, with its 95% interval, where the case
    measured its reference beside it; otherwise the ratio of two cases' tok/s, marked unpaired (~)."""
    if p.paired_speed is not None:
        ratio, low, high = p.paired_speed
        return f"{ratio:.2f} [{low:.2f}, {high:.2f}]"
    if ref is p:
        return "1 (reference)"
    return f"~{p.tok_per_s / ref.tok_per_s:.2f} unpaired" if ref else "-"


def format_tradeoff(points: list[Point]) -> list[str]:
    """The table printed at the end of a run: ratios to fp32 of the same batch size."""
    front = pareto_front(points)
    header = (f"{'method':<13} {'batch':>5} {'tok/s':>7} {'x fp32 [95% interval]':>22} {'bytes x':>7} {'KLD':>9} "
              f"{'top-1':>6} {'acc':>5} {'vs fp32 items':>18} {'bw':>5}  pareto")
    lines = [header]
    for p in sorted(points, key=lambda p: (p.batch_size, -p.tok_per_s)):
        ref = _reference(points, p.batch_size)
        speed = speed_cell(p, ref)
        size = f"{p.model_bytes / ref.model_bytes:.2f}" if ref else "-"
        paired = "-"
        if ref and ref is not p and p.items is not None and ref.items is not None and len(p.items) == len(ref.items):
            lost, gained, pvalue = mcnemar(ref.items, p.items)
            paired = f"-{lost}/+{gained} p={pvalue:.2f}"
        lines.append(
            f"{p.method:<13} {p.batch_size:>5} {p.tok_per_s:>7.1f} {speed:>22} {size:>7} {p.kld_mean:>9.5f} "
            f"{_num(p.top1, '.3f'):>6} {_num(p.acc, '.3f'):>5} {paired:>18} {_num(p.decode_bw_fraction, '.0%'):>5}  "
            f"{'yes' if p in front else ''}")
    return lines


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def plot_tradeoff(points: list[Point], path: Path) -> Path:
    """Speed vs KLD, marker area proportional to weight bytes, the front joined; a PNG at ``path``."""
    front = pareto_front(points)
    figure, axes = pyplot().subplots(figsize=(8, 5), dpi=120)
    largest = max(p.model_bytes for p in points)
    for batch in sorted({p.batch_size for p in points}):
        group = [p for p in points if p.batch_size == batch]
        xs = [max(p.kld_mean, 1e-6) for p in group]
        axes.scatter(xs, [p.tok_per_s for p in group], s=[40 + 400 * p.model_bytes / largest for p in group],
                     alpha=0.6, label=f"batch {batch}")
        for p, x in zip(group, xs):
            axes.annotate(p.method, (x, p.tok_per_s), fontsize=8, xytext=(4, 4), textcoords="offset points")
        line = sorted((p for p in group if p in front), key=lambda p: p.kld_mean)
        axes.plot([max(p.kld_mean, 1e-6) for p in line], [p.tok_per_s for p in line], linestyle="--", linewidth=1)
    axes.set_xscale("log")
    axes.set_xlabel("mean KL divergence to the unquantized model (nats, log; fp32 drawn at 1e-6)")
    axes.set_ylabel("output tokens/s")
    axes.set_title("Quantized variants: speed vs fidelity (marker area = weight bytes; dashed = Pareto front)")
    axes.legend()
    return save_png(figure, path)


def tradeoff_summary(run_folder: Path, records: Iterable[Record]) -> tuple[list[str], Path | None, str | None]:
    """(table lines, PNG path or None, why no PNG) for a run folder holding quantized records."""
    return table_and_plot(points_from_records(records), format_tradeoff, plot_tradeoff, run_folder / "pareto.png")
