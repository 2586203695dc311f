"""Latency-throughput curves printed and drawn: a table per run and ``latency_throughput.png``, p50
(solid) and p99 (dashed) TTFT and TPOT against achieved output tokens/s (each point made by
measure/curves.py and kept in its record's ``curve``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from pytest_inferlab.record.record import Record
from pytest_inferlab.outputs.plots import pyplot, save_png, table_and_plot


def configuration_label(record: Record) -> str:
    """What distinguishes one line of the plot: model, quantization, KV cache, batching engine (with
    its settings), workload (points of different traffic are different curves)."""
    spec = record.spec
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


def curves_of(records: Iterable[Record]) -> dict[str, list[dict[str, Any]]]:
    """Points per configuration label, from the records that have any."""
    curves: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        label = configuration_label(record)
        for point in record.curve:
            if point.get("output_tok_per_s") is not None:  # one line per configuration and arrival process
                curves.setdefault(f"{label} {point.get('process', '')}".strip(), []).append(point)
    return {label: sorted(points, key=lambda p: p["output_tok_per_s"]) for label, points in sorted(curves.items())}


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_curves(curves: Mapping[str, list[dict[str, Any]]]) -> list[str]:
    slos = sorted({f"{p.get('slo', 'none')} for {p.get('attainment_target', 0):.0%} of requests"
                   for points in curves.values() for p in points})
    width = max([34, *map(len, curves)])  # a label whole: settings and workload tell curves apart
    header = (f"{'configuration':<{width}} {'load':<16} {'req/s':>6} {'tok/s':>7} {'TTFT p50':>9} {'p99':>8} "
              f"{'TPOT p50':>9} {'p99':>7} {'goodput':>8} {'SLO met':>8}")
    lines = [f"SLO: {'; '.join(slos)}", header]
    for label, points in curves.items():
        for p in points:
            mark = "" if p["slo_attainment"] is None else (" ok" if p["sustained"] else " NO")
            lines.append(f"{label:<{width}} {p['load'][:16]:<16} {_num(p['req_per_s'], '.2f'):>6} "
                         f"{_num(p['output_tok_per_s'], '.1f'):>7} {_num(p['ttft_p50_ms'], '.0f'):>9} "
                         f"{_num(p['ttft_p99_ms'], '.0f'):>8} {_num(p['tpot_p50_ms'], '.1f'):>9} "
                         f"{_num(p['tpot_p99_ms'], '.1f'):>7} {_num(p['goodput_req_per_s'], '.2f'):>8} "
                         f"{_num(p['slo_attainment'], '.0%'):>5}{mark}")
    return lines


def curves_figure(curves: Mapping[str, list[dict[str, Any]]]) -> Any:
    """p50 (solid) and p99 (dashed) TTFT and TPOT against achieved output tokens/s, one colour per line."""
    figure, (ttft, tpot) = pyplot().subplots(1, 2, figsize=(12, 5), dpi=120)
    for index, (label, points) in enumerate(curves.items()):
        color = f"C{index % 10}"
        xs = [p["output_tok_per_s"] for p in points]
        for axes, metric in ((ttft, "ttft"), (tpot, "tpot")):
            axes.plot(xs, [p[f"{metric}_p50_ms"] for p in points], marker="o", color=color, label=f"{label} p50")
            axes.plot(xs, [p[f"{metric}_p99_ms"] for p in points], marker="x", linestyle="--", color=color,
                      label=f"{label} p99")
    for axes, name in ((ttft, "TTFT (ms, log)"), (tpot, "TPOT (ms, log)")):
        axes.set_yscale("log")
        axes.set_xlabel("achieved output tokens/s")
        axes.set_ylabel(name)
        axes.grid(True, alpha=0.3)
    ttft.set_title("time to first token vs throughput")
    tpot.set_title("time per output token vs throughput")
    tpot.legend(fontsize=7)
    return figure


def plot_curves(curves: Mapping[str, list[dict[str, Any]]], path: Path) -> Path:
    return save_png(curves_figure(curves), path)


def curves_summary(run_folder: Path, records: Iterable[Record]) -> tuple[list[str], Path | None, str | None]:
    """(table lines, PNG path or None, why no PNG) for a run folder's records under load (as read)."""
    return table_and_plot(curves_of(list(records)), format_curves, plot_curves,
                          run_folder / "latency_throughput.png")
