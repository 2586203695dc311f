"""The study's ``report.html``: the measured configurations as a speed x memory plot (the feasible front
joined, the pick ringed), the table of trials, the pruned configurations with their reasons and the
confirmation. One self-contained file: inline SVG, no script, no network."""

from __future__ import annotations

import html
import math

from pytest_inferlab.tune.answer import Answer, reproduction

WIDTH, HEIGHT, PAD = 640, 360, 60


def _e(value: object) -> str:
    return html.escape(str(value))


def _plot(found: Answer) -> str:
    points = [(n, r) for n, r in found.results if r.objective is not None and r.memory_bytes]
    if not points:
        return "<p>No configuration has both a speed and a memory figure to plot.</p>"
    xs = [r.memory_bytes / 1e6 for _, r in points]
    ys = [r.objective for _, r in points]
    x0, x1 = min(xs) * 0.9, max(xs) * 1.1
    y0, y1 = min(ys) * 0.9, max(ys) * 1.1

    def sx(x: float) -> float:
        return PAD + (x - x0) / ((x1 - x0) or 1) * (WIDTH - 2 * PAD)

    def sy(y: float) -> float:
        return HEIGHT - PAD - (y - y0) / ((y1 - y0) or 1) * (HEIGHT - 2 * PAD)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
             'aria-label="speed against memory of every measured configuration">',
             f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#333"/>',
             f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#333"/>',
             f'<text x="{WIDTH / 2}" y="{HEIGHT - 15}" text-anchor="middle">memory (MB of weights)</text>',
             f'<text x="15" y="{HEIGHT / 2}" transform="rotate(-90 15 {HEIGHT / 2})" text-anchor="middle">'
             f'{_e(found.space.objective)} (x the reference)</text>']
    for value in (y0, (y0 + y1) / 2, y1):
        parts.append(f'<text x="{PAD - 5}" y="{sy(value) + 4:.1f}" text-anchor="end" font-size="11">{value:.2f}</text>')
    for value in (x0, (x0 + x1) / 2, x1):
        parts.append(f'<text x="{sx(value):.1f}" y="{HEIGHT - PAD + 15}" text-anchor="middle" font-size="11">'
                     f'{value:.0f}</text>')
    front = sorted((r for _, r in points if r in found.front), key=lambda r: r.memory_bytes)
    if len(front) > 1:
        path = " ".join(f"{sx(r.memory_bytes / 1e6):.1f},{sy(r.objective):.1f}" for r in front)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#2a7" stroke-dasharray="4 3"/>')
    for number, result in points:
        x, y = sx(result.memory_bytes / 1e6), sy(result.objective)
        colour = "#2a7" if result.feasible(found.space.slo) else "#c44"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}"><title>#{number} '
                     f'{_e(result.config.label)}</title></circle>')
        if result is found.chosen:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="10" fill="none" stroke="#000" stroke-width="2"/>')
        parts.append(f'<text x="{x + 7:.1f}" y="{y - 7:.1f}" font-size="10">#{number}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _trials(found: Answer) -> str:
    rows = []
    for number, result in found.results:
        speed = result.speed.words() if result.speed else "-"
        state = "failed" if result.failed else "feasible" if result.feasible(found.space.slo) else "infeasible"
        notes = result.failed or "; ".join(result.violations(found.space.slo)
                                           + [c.words() for c in result.floors]
                                           + ([str(result.rounds.get("stopped"))] if result.rounds.get("stopped") else []))
        memory = f"{result.memory_bytes / 1e6:.0f} MB" if result.memory_bytes else "-"
        front = "yes" if result in found.front else ""
        rows.append(f"<tr><td>#{number}</td><td>{_e(result.config.label)}</td><td>{_e(speed)}</td><td>{memory}</td>"
                    f"<td>{state}</td><td>{front}</td><td>{_e(notes)}</td></tr>")
    return ("<table><tr><th>trial</th><th>configuration</th><th>tokens/s vs reference [95%]</th><th>memory</th>"
            "<th>state</th><th>front</th><th>SLOs, floors, stop</th></tr>" + "".join(rows) + "</table>")


def tune_page(found: Answer) -> str:
    space = found.space
    chosen = found.chosen
    pick = (f"<p><b>Pick: {_e(chosen.config.label)}</b> ({_e(chosen.speed.words() if chosen.speed else chosen.objective)}"
            " the reference's tokens/s)</p>" if chosen else
            "<p><b>No configuration met every SLO and floor.</b></p>")
    confirmation = f"<p>Confirmation: {_e(found.confirmation.words())}</p>" if found.confirmation else ""
    code = "<pre>" + _e("\n".join(reproduction(chosen.config, space))) + "</pre>" if chosen else ""
    pruned = "".join(f"<li>{_e(p.config.label)}: {_e(p.reason)}</li>" for p in found.pruned)
    limits = "; ".join([b.label for b in space.slo] + [f.label for f in space.floors]) or "none"
    minutes = f", {found.seconds / 60:.1f} min" if found.seconds and math.isfinite(found.seconds) else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>inferlab tune: {_e(space.name)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:3px 6px;font-size:13px}</style></head><body>"
            f"<h1>inferlab tune: {_e(space.name)}</h1><p>{_e(space.source)}: workload {_e(space.workload)}, objective "
            f"{_e(space.objective)}, limits {_e(limits)}; {len(found.results)} measured, {len(found.pruned)} pruned"
            f"{minutes}</p>{pick}{confirmation}<h2>Speed x memory</h2><p>Green: feasible, red: infeasible; the dashed "
            f"line joins the feasible front; the ring marks the pick.</p>{_plot(found)}<h2>Trials</h2>{_trials(found)}"
            f"<h2>Pruned before running</h2><ul>{pruned or '<li>none</li>'}</ul><h2>Reproduce the pick</h2>{code}"
            "</body></html>")
