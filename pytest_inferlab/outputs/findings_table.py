"""The findings in the terminal: one row per optimization (family, speed against its reference,
memory, fidelity, accuracy), then each finding in one sentence, then the pick."""

from __future__ import annotations

import math
from typing import Sequence

from pytest_inferlab.outputs.decisions import pick_words
from pytest_inferlab.outputs.findings import Finding


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def format_findings(findings: Sequence[Finding], width: int = 150) -> list[str]:
    """The findings table, then one sentence per finding."""
    if not findings:
        return []
    header = (f"{'family':<12} {'optimization':<40} {'tok/s':>7} {'x reference [95%]':>20} {'peak MiB':>8}  "
              f"{'memory':<26} {'fidelity':<30} accuracy")
    lines = [header, "-" * min(width, len(header) + 20)]
    for f in findings:
        lines.append(f"{f.family:<12} {_cut(f.optimization, 40):<40} {_num(f.tok_per_s, '.1f'):>7} "
                     f"{f.speed.cell() if f.speed else '-':>20} {_num(f.peak_mib, '.0f'):>8}  "
                     f"{_cut(f.memory or '-', 26):<26} {_cut(f.fidelity, 30):<30} {f.accuracy}")
    lines.append("x reference: paired rounds against the reference in the same case, 95% interval; "
                 "~ unpaired: against another case of this run")
    lines.append("")
    lines.append("what was found:")
    lines += [f"  {f.words()}" for f in findings]
    advice = pick_words(findings)
    if advice:
        lines += ["", f"pick: {advice}"]
    return lines
