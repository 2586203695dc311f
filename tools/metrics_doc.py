"""Write docs/reference/metrics.md from the metric catalog (measure/catalog.py), the one source of its facts.

``python tools/metrics_doc.py``; tests/unit/test_architecture.py fails when the page is stale.
"""

from __future__ import annotations

from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "metrics.md"


def render() -> str:
    from pytest_inferlab.measure.catalog import EVAL_DIRECTIONS, catalog

    lines = ["# Metrics", "",
             "Generated from `pytest_inferlab/measure/catalog.py` by `python tools/metrics_doc.py`; do not edit.",
             "Names carry their units. Kind: how the gate judges a metric (`timing`: against the run history,",
             "re-measured before a regression stands; `deterministic`: a relative tolerance; `count`: any",
             "increase is worse; `info`: recorded, never judged). Tolerance: the default, overridden per project",
             "(`inferlab_tolerance`) or per test (`@pytest.mark.inferlab(tolerance={...})`).", "",
             "| metric | unit | better | kind | tolerance | definition |", "|---|---|---|---|---|---|"]
    for name in catalog.names():
        facts = catalog.get(name)
        tolerance = f"{facts.tolerance:.0%}" if facts.kind != "info" else "-"
        lines.append(f"| `{name}` | {facts.unit} | {'higher' if facts.higher_is_better else 'lower'} | {facts.kind} "
                     f"| {tolerance} | {facts.help} |")
    lines += ["", "Task scores of any lm-eval task are recorded as `<task>.<metric>`; their direction comes from",
              "the metric's name: " + ", ".join(f"`{m}` {'higher' if up else 'lower'}"
                                                for m, up in sorted(EVAL_DIRECTIONS.items())) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    PAGE.write_text(render())
    print(f"wrote {PAGE}")
