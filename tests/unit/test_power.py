"""The detection-power tool runs end to end (tiny sizes, dummy model) and prints its table."""

from power_study import METRICS, main


def test_power_tool_prints_noise_false_alarms_and_detections(capsys):
    main(["--model", "dummy:tiny", "--threads", "1", "--history", "3", "--repeats", "1", "--tokens", "4",
          "--rounds", "2", "--slowdowns", "1.0"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("model=dummy:tiny threads=1 history=3 runs, repeats=1")
    assert out[1].split() == ["metric", "noise", "(log", "sd)", "+0%", "false", "alarms", "+100%", "detected"]
    rows = {line[:36].strip(): [line[36:51].strip(), line[51:69].strip(), line[69:].strip()] for line in out[2:]}
    assert set(rows) - set(METRICS) <= {f"{m} (gate: {view})" for m in METRICS for view in ("raw", "host units")}
    assert len(rows) == 2 * len(METRICS)
    for noise, false_alarms, detected in rows.values():
        assert float(noise) >= 0
        for cell in (false_alarms, detected):
            assert cell in ("0/1 (0)", "0/1 (1)", "1/1 (1)"), cell
