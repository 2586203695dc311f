"""``report.html``: one self-contained page per run folder, rebuilt from its records.

No network and no script: styles inline, the front as inline SVG, curves as a PNG data URI, every text from a record (test
ids, parameters, environment values) HTML-escaped, so the page opens from a CI artifact, an email
attachment or a file:// URL alike, and a hostile test id is shown as text. Sections: the run,
what was found (the findings table and its sentences), the speed x memory x fidelity front across
every family, the latency-throughput curves, the verdicts, the environment.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from pytest_inferlab.outputs.curves import curves_figure, curves_of, format_curves
from pytest_inferlab.outputs.decisions import FrontPoint, front_points, pareto_front, pick_words
from pytest_inferlab.outputs.findings import Finding, findings_of
from pytest_inferlab.outputs.plots import has_matplotlib, pyplot
from pytest_inferlab.ground.jsonio import write_text_replace
from pytest_inferlab.record.record import Record
from pytest_inferlab.record.run_folder import RunFolder, load_run

REPORT = "report.html"
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #1d2430; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #d5dae1; }
table { border-collapse: collapse; margin: .5em 0; font-size: 13px; }
th, td { border: 1px solid #d5dae1; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #eef1f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.regressed { background: #fbe3e3; } .improved { background: #e3f6e6; } .front { font-weight: 600; }
.note { color: #5a6472; } code { background: #f3f5f8; padding: 0 3px; } img { max-width: 100%; }
.banner { background: #fff4d6; border: 1px solid #e8c96b; padding: .5em 1em; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], classes: Iterable[str] = ()) -> str:
    """Cells are escaped here; a cell that is a number is right-aligned; no header, no head row."""
    classes = list(classes)
    thead = ["<thead><tr>", *(f"<th>{_e(h)}</th>" for h in header), "</tr></thead>"] if header else []
    out = ["<table>", *thead, "<tbody>"]
    for index, row in enumerate(rows):
        css = f' class="{_e(classes[index])}"' if index < len(classes) and classes[index] else ""
        out.append(f"<tr{css}>")
        for cell in row:
            numeric = isinstance(cell, (int, float)) and not isinstance(cell, bool)
            out.append(f'<td class="num">{_e(cell)}</td>' if numeric else f"<td>{_e(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _png(figure: Any) -> str:
    """A matplotlib figure as an <img> with a data URI (the page needs no other file)."""
    plt = pyplot()
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _agreement_colour(agreement: float, low: float) -> str:
    """Red (``low`` agreement) through yellow to green (1.0), as an SVG colour."""
    t = 1.0 if low >= 1.0 else max(0.0, min(1.0, (agreement - low) / (1.0 - low)))
    red, green = (215, int(48 + 170 * 2 * t)) if t < 0.5 else (int(215 - 190 * (2 * t - 1)), 218)
    return f"rgb({red},{green},60)"


def _front_plot(points: Sequence[FrontPoint], front: Sequence[FrontPoint]) -> str:
    """The speed x memory x fidelity plane as inline SVG: drawn by the page itself (no plotting
    library to import per run, no image to decode), every label a number."""
    width, height, left, right, top, bottom = 760, 440, 70, 30, 40, 60
    x_max = max(1.1, max(p.memory for p in points) * 1.1)
    y_max = max(1.1, max(p.speed for p in points) * 1.1)

    def x(value: float) -> float:
        return left + value / x_max * (width - left - right)

    def y(value: float) -> float:
        return height - bottom - value / y_max * (height - top - bottom)

    low = min(0.5, *(p.agreement for p in points))
    out = [f'<svg class="front" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="speed x memory x fidelity">',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="13">speed x memory x fidelity across '
           "families (outlined, dashed: the Pareto front)</text>"]
    for i in range(6):
        xv, yv = x_max * i / 5, y_max * i / 5
        out.append(f'<line x1="{x(xv):.1f}" y1="{y(0):.1f}" x2="{x(xv):.1f}" y2="{y(0) + 5:.1f}" stroke="#333"/>'
                   f'<text x="{x(xv):.1f}" y="{y(0) + 18:.1f}" text-anchor="middle" font-size="11">{xv:.2f}</text>'
                   f'<line x1="{x(0) - 5:.1f}" y1="{y(yv):.1f}" x2="{x(0):.1f}" y2="{y(yv):.1f}" stroke="#333"/>'
                   f'<text x="{x(0) - 8:.1f}" y="{y(yv) + 4:.1f}" text-anchor="end" font-size="11">{yv:.2f}</text>')
    out.append(f'<polyline fill="none" stroke="#333" points="{x(0):.1f},{y(y_max):.1f} {x(0):.1f},{y(0):.1f} '
               f'{x(x_max):.1f},{y(0):.1f}"/>'
               f'<line x1="{x(0):.1f}" y1="{y(1):.1f}" x2="{x(x_max):.1f}" y2="{y(1):.1f}" stroke="#bbb"/>'
               f'<text x="{(left + width - right) / 2}" y="{height - 15}" text-anchor="middle" font-size="12">memory: '
               "bytes the optimization keeps (weights or KV) x the reference's</text>"
               f'<text transform="translate(16 {(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle" '
               'font-size="12">speed: output tokens/s x the reference\'s</text>')
    line = sorted(front, key=lambda p: p.memory)
    out.append('<polyline fill="none" stroke="grey" stroke-dasharray="5,4" points="'
               + " ".join(f"{x(p.memory):.1f},{y(p.speed):.1f}" for p in line) + '"/>')
    for index, p in enumerate(points, 1):
        edge = ' stroke="black" stroke-width="2"' if p in front else ""
        out.append(f'<circle cx="{x(p.memory):.1f}" cy="{y(p.speed):.1f}" r="7" '
                   f'fill="{_agreement_colour(p.agreement, low)}"{edge}><title>{index}: fidelity '
                   f"{p.agreement:.3f}</title></circle>"
                   f'<text x="{x(p.memory) + 9:.1f}" y="{y(p.speed) - 6:.1f}" font-size="11">{index}</text>')
    out.append("</svg>")
    return "".join(out)


def _findings_section(findings: Sequence[Finding]) -> str:
    if not findings:
        return "<p>No case of this run measures latency (a harness self-measurement or a sweep only).</p>"
    rows = [(f.family, f.optimization, f"{f.tok_per_s:.1f}" if f.tok_per_s else "-",
             f.speed.cell() if f.speed else "-", f"{f.peak_mib:.0f}" if f.peak_mib else "-", f.memory or "-",
             f.fidelity, f.accuracy, f.test_id) for f in findings]
    classes = ["regressed" if f.failed else "" for f in findings]
    words = "".join(f"<li>{_e(f.words())}</li>" for f in findings)
    return (_table(("family", "optimization", "tok/s", "x reference [95%]", "peak MiB", "memory", "fidelity",
                    "accuracy", "test"), rows, classes)
            + '<p class="note">x reference: output tokens/s against the reference measured in the same case, '
              "round by round, with its 95% interval; ~ unpaired: against another case of this run "
              "(no interval).</p>"
            + f"<h3>In words</h3><ul>{words}</ul>"
            + (f'<p class="pick"><b>Pick:</b> {_e(advice)}</p>' if (advice := pick_words(findings)) else ""))


def _front_section(findings: Sequence[Finding]) -> str:
    points, left_out = front_points(findings)
    if len(points) < 2:
        return "<p>Fewer than two findings with speed, memory and fidelity all known: no front to draw.</p>"
    front = pareto_front(points)
    rows = [(index, p.finding.optimization, p.finding.family, round(p.speed, 3), round(p.memory, 3),
             round(p.agreement, 3), "yes" if p in front else "") for index, p in enumerate(points, 1)]
    parts = [_front_plot(points, front),
             '<p class="note">Colour: fidelity, red (least agreement here) to green (1.0, the reference\'s '
             "tokens); each point's number is its row below.</p>",
             _table(("#", "optimization", "family", "speed x", "memory x", "fidelity", "on the front"), rows,
                    ["front" if p in front else "" for p in points])]
    if left_out:
        parts.append('<p class="note">Not on the plane (an axis unknown: no paired or same-run reference, no '
                     "memory effect measured, or fidelity not measured): "
                     + ", ".join(_e(f.optimization) for f in left_out) + ".</p>")
    return "".join(parts)


def _verdicts_section(records: Sequence[Record]) -> str:
    rows, classes, counts = [], [], {}
    for record in records:
        for v in record.verdicts:
            counts[v["outcome"]] = counts.get(v["outcome"], 0) + 1
            if v["outcome"] in ("unchanged", "new"):
                continue
            interval = v.get("interval")
            rows.append((record.test_id, v["metric"], v["outcome"],
                         f"{v['ratio']:.3f}" if v.get("ratio") is not None else "-",
                         f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "-", v.get("reason", "")))
            classes.append(v["outcome"])
    summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"
    baselines = {str(r.baseline.get("path")) for r in records if r.baseline}
    head = f"<p>Verdicts against the stored baselines: {_e(summary)}.</p>"
    if not baselines:
        head += '<p class="note">No case had a baseline: every metric is new (save one with --inferlab-save-baseline).</p>'
    if not rows:
        return head
    return head + _table(("test", "metric", "verdict", "ratio", "interval", "why"), rows, classes)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for key, value in sorted(data.items()):
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(_flatten(value, f"{name}."))
        else:
            out.append((name, value if not isinstance(value, list) else ", ".join(map(str, value))))
    return out


def _environment_section(records: Sequence[Record]) -> str:
    environment = records[0].environment
    differing = sorted({key for r in records[1:] for key, value in _flatten(r.environment)
                        if dict(_flatten(environment)).get(key) != value})
    note = ("" if not differing else
            f'<p class="note">These differ between the run\'s records: {_e(", ".join(differing))}.</p>')
    return _table(("fact", "value"), _flatten(environment)) + note


def _failures_banner(manifest: Mapping[str, Any]) -> str:
    """The cases that failed, first on the page, each with the first line of why."""
    failures = manifest.get("failures") or []
    if not failures:
        return ""
    rows = [(f["nodeid"], f["when"], f["reason"]) for f in failures]
    return (f'<div class="banner"><p><strong>{len(failures)} case(s) failed</strong> (exit status '
            f'{_e(manifest.get("exit_status", "-"))}):</p>{_table(("case", "during", "why"), rows)}</div>')


def build_report(run: RunFolder) -> str:
    """The page of ``run`` as one HTML string."""
    records = list(run.records)
    findings = findings_of(records)
    manifest = run.manifest or {}
    first = min((r.started_at for r in records), default="")
    last = max((r.finished_at for r in records), default="")
    commit = records[0].commit
    facts = [("run", run.run_id), ("status", run.status + ("" if run.manifest else " (no manifest: an older run)")),
             ("command", " ".join(manifest.get("command") or []) or "-"), ("measured", f"{first} .. {last}"),
             ("machine", records[0].machine_id), ("commit", commit or "-"),
             ("records", len(records)), ("exit status", manifest.get("exit_status", "-"))]
    banner = ""
    if run.status != "finished":
        banner = (f'<p class="banner">This run was {_e(run.status)}: the report shows the cases it finished '
                  "and recorded.</p>")
    banner += _failures_banner(manifest)
    curves = curves_of(records)
    curve_html = "<p>No case of this run ran under a load (batching=/load=).</p>"
    if curves:
        table = "\n".join(format_curves(curves))
        curve_html = (_png(curves_figure(curves)) if has_matplotlib() else "") + f"<pre>{_e(table)}</pre>"
    body = [f"<h1>pytest-inferlab run {_e(run.run_id)}</h1>", banner, _table((), facts),
            "<h2>What was found</h2>", _findings_section(findings),
            "<h2>Speed x memory x fidelity</h2>", _front_section(findings),
            "<h2>Latency-throughput</h2>", curve_html,
            "<h2>Verdicts</h2>", _verdicts_section(records),
            "<h2>Environment</h2>", _environment_section(records)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>inferlab run {_e(run.run_id)}</title>"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">"
            f"<style>{STYLE}</style></head><body>{''.join(body)}"
            "<p class=\"note\">Written by pytest-inferlab from the run's records; rebuild with "
            f"<code>inferlab report {_e(run.path)}</code>.</p></body></html>\n")


def write_report(folder: Path, run: RunFolder | None = None) -> Path:
    """Write report.html of the run in ``folder``: ``run`` as already read, else read now (RunFolderError
    if it is not a finished run)."""
    run = run if run is not None else load_run(folder)
    page = build_report(run)
    path = folder / REPORT
    write_text_replace(path, page)
    return path
