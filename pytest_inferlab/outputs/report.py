"""Terminal report: formatting only, no decisions."""

from __future__ import annotations

from typing import Any, Sequence

MiB = 2**20
WIDTH = 100

COLUMNS = (  # (header, row key, format, right-aligned)
    ("model", "model", "{}", False),
    ("TTFT ms", "ttft_ms", "{:.1f}", True),
    ("TPOT ms", "tpot_ms", "{:.1f}", True),
    ("out tok/s", "output_tok_per_s", "{:.1f}", True),
    ("peak MiB", "peak_mem_mib", "{:.0f}", True),
    ("note", "short_note", "{}", False),
)
NOTE_WIDTH = 10  # longer notes go on a line of their own under the row
LEGEND = "TTFT/TPOT: request medians · out tok/s: over the measured window · peak: RSS (CPU) or CUDA peak"


def report_row(case: str, model: str, values: dict[str, float | None], note: str = "") -> dict[str, Any]:
    peak = values.get("peak_mem_bytes")
    return {"case": case, "model": model, "ttft_ms": values.get("ttft_ms"), "tpot_ms": values.get("tpot_ms"),
            "output_tok_per_s": values.get("output_tok_per_s"),
            "peak_mem_mib": peak / MiB if peak is not None else None, "note": note}


def _cell(fmt: str, value: Any) -> str:
    return "-" if value is None or value == "" else fmt.format(value)


def _shorten(text: str, width: int) -> str:
    """Keep both ends (test name and parameters), drop the middle."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def format_table(rows: Sequence[dict[str, Any]], width: int = WIDTH) -> list[str]:
    """One line per case, at most ``width`` columns: long case names lose their middle."""
    rows = [{**row, "short_note": row["note"] if len(row["note"]) <= NOTE_WIDTH else "↓"} for row in rows]
    cells = [[_cell(fmt, row.get(key)) for _, key, fmt, _ in COLUMNS] for row in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (h, *_) in enumerate(COLUMNS)]
    case_width = max(16, min(max(len(r["case"]) for r in rows), width - sum(widths) - 2 * len(COLUMNS)))

    def line(first: str, values: Sequence[str]) -> str:
        parts = [first.ljust(case_width)]
        parts += [v.rjust(w) if right else v.ljust(w) for v, w, (*_, right) in zip(values, widths, COLUMNS)]
        return "  ".join(parts).rstrip()

    header = line("case", [h for h, *_ in COLUMNS])
    body = []
    for row, cell in zip(rows, cells):
        body.append(line(_shorten(row["case"], case_width), cell))
        if row["short_note"] == "↓":
            body.append(_shorten(f"  ↳ {row['note']}", width))
    return [header, "-" * len(header), *body, LEGEND]


def verdict_rows(case: str, verdicts: Sequence[Any], gating: bool) -> list[dict[str, Any]]:
    """Plain dicts (they travel through xdist) for the session summary."""
    return [{"case": case, "metric": v.metric, "outcome": v.outcome, "ratio": v.ratio,
             "interval": list(v.interval) if v.interval else None, "gating": gating} for v in verdicts]


def verdict_section(verdicts: Sequence[Any], baseline: dict[str, Any] | None, warning: str | None) -> str:
    """The test's report section: every verdict with its numbers and reason, worst first."""
    order = {"regressed": 0, "invalid": 1, "inconclusive": 2, "improved": 3, "new": 4, "unchanged": 5}
    if baseline and "error" in baseline:
        lines = [f"baseline: unreadable, no verdicts ({baseline['error']})"]
    else:
        lines = [f"baseline: {baseline['path']}" if baseline else "baseline: none (first run of this case here)"]
    if warning:
        lines.append(f"warning: {warning}")
    for v in sorted(verdicts, key=lambda v: order[v.outcome]):
        numbers = "" if v.baseline is None else f" current {v.current:.4g} vs baseline {v.baseline:.4g}:"
        lines.append(f"{v.metric}: {v.outcome.upper()}{numbers} {v.reason}")
    return "\n".join(lines)


def format_verdict_summary(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Counts of every outcome, then one line per verdict that is not 'unchanged' or 'new'."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
    lines = ["verdicts: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items(), key=lambda kv: -kv[1]))]
    notable = [r for r in rows if r["outcome"] not in ("unchanged", "new")]
    if notable:
        lines.append(f"{'case':<30}  {'metric':<18}  {'verdict':<12}  {'ratio':>7}  {'interval':<18}  gate")
        for r in notable:
            ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else "-"
            interval = f"[{r['interval'][0]:.3f}, {r['interval'][1]:.3f}]" if r["interval"] else "-"
            lines.append(f"{_shorten(r['case'], 30):<30}  {r['metric'][:18]:<18}  {r['outcome']:<12}  {ratio:>7}  "
                         f"{interval[:18]:<18}  {'yes' if r['gating'] else 'no'}")
    return lines
