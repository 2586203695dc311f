"""The detection-power tool runs end to end (tiny sizes, dummy model) and prints its table."""

from pytest_inferlab.power import main


def test_power_tool_prints_noise_false_alarms_and_detections(capsys):
    main(["--model", "dummy:tiny", "--history", "3", "--repeats", "1", "--tokens", "4", "--rounds", "2",
          "--slowdowns", "1.0"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("model=dummy:tiny threads=1 history=3 runs, repeats=1")
    assert out[1].split() == ["metric", "noise", "(log", "sd)", "+0%", "false", "alarms", "+100%", "detected"]
    rows = {line.split()[0]: line.split()[1:] for line in out[2:]}
    assert set(rows) == {"tpot_ms", "ttft_ms", "e2e_ms", "output_tok_per_s",
                         "tpot_ms/ref", "ttft_ms/ref", "e2e_ms/ref", "output_tok_per_s/ref"}
    for noise, false_alarms, detected in rows.values():
        assert float(noise) >= 0 and false_alarms in ("0/1", "1/1") and detected in ("0/1", "1/1")
