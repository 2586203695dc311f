"""The detection-power tool runs end to end (tiny sizes, dummy model) and prints its table."""

import pytest

from power_study import METRICS, main

pytestmark = pytest.mark.alone  # plants a slowdown and counts its detection


def test_power_tool_prints_both_modes(capsys):
    main(["--model", "dummy:tiny", "--threads", "1", "--history", "3", "--repeats", "2", "--tokens", "4",
          "--rounds", "2", "--pairs", "5", "--slowdowns", "3.0"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("model=dummy:tiny threads=1 started ") and "repeats=2" in out[0]
    assert out[1].startswith("history mode: 3 baseline runs") and out[2].startswith("A/B mode: 5 pairs")
    assert out[3].split() == ["mode", "metric", "noise", "(log", "sd)", "+0%", "false", "alarms", "+300%", "detected"]
    assert out[-1].startswith("history mode, first regressions the host rule set aside")
    rows = {(line[:8].strip(), line[8:26].strip()): line[41:].split() for line in out[4:-1]}
    assert set(rows) == {(mode, m) for mode in ("history", "ab") for m in (*METRICS, "the case (any)")}
    assert rows[("ab", "the case (any)")] == ["0/2", "2/2"]  # the case fails when any series regressed
    # a 4x slowdown of the decode steps is found by pairs in every repeat; unchanged pairs never regress
    # (5 pairs: with 3, the t quantile of 2 degrees of freedom missed it in 1 of 2 repeats in a fresh clone)
    assert rows[("ab", "tpot_ms")] == ["0/2", "2/2"]
    for (mode, _), cells in rows.items():
        counts = [cell for cell in cells if not cell.startswith("(")]  # history cells add "(first measurements)"
        assert len(counts) == 2 and all(cell in ("0/2", "1/2", "2/2") for cell in counts), cells
