"""Change points (E-Divisive means through Apache Otava) on hand-made histories, baselines folders,
records and asv results; the `inferlab changes` command."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from pytest_inferlab.cli import main
from pytest_inferlab.judge.changepoints import MIN_POINTS, detect, detect_all
from pytest_inferlab.judge.policy import policy_of
from pytest_inferlab.outputs.asv_changes import CHANGE_POINTS_FILE, published_policy, write_change_points
from pytest_inferlab.outputs.asv_export import export
from pytest_inferlab.ground.jsonio import write_json_new
from pytest_inferlab.record.baselines import BASELINE_SCHEMA_VERSION
from pytest_inferlab.record.series import RunPoint, RunSeries, series_from_baselines, series_from_records

from test_asv_export import record  # tests/unit is on sys.path (pytest prepend import mode)


def series(values, metric="tpot_ms", test_id="t::a"):
    return RunSeries("m1", test_id, metric, tuple(RunPoint(f"r{i}", f"{i:040x}", v) for i, v in enumerate(values)))


def noisy(level, n, seed, noise=0.01):
    rng = random.Random(seed)
    return [level * (1 + rng.gauss(0, noise)) for _ in range(n)]


def test_a_step_for_the_worse_is_a_regression_at_its_commit():
    before, after = noisy(40, 20, 1), noisy(46, 15, 2)
    found = detect(series(before + after), policy_of("tpot_ms"))
    assert found.label == "regression"
    [shift] = found.shifts
    assert shift.index == 20 and shift.commit == f"{20:040x}"
    assert shift.ratio == pytest.approx(statistics.fmean(after) / statistics.fmean(before)) and shift.ratio > 1.1
    assert f"{shift.ratio:.3f}x at commit 00000000 (run 21;" in found.line()


def test_direction_follows_the_metric():
    faster = detect(series(noisy(25, 20, 3) + noisy(30, 15, 4), metric="output_tok_per_s"), policy_of("output_tok_per_s"))
    assert faster.label == "improvement"
    slower = detect(series(noisy(30, 20, 3) + noisy(25, 15, 4), metric="output_tok_per_s"), policy_of("output_tok_per_s"))
    assert slower.label == "regression"


def test_noise_alone_is_no_change_and_short_histories_are_insufficient():
    assert detect(series(noisy(40, 40, 5)), policy_of("tpot_ms")).label == "no change"
    assert detect(series(noisy(40, MIN_POINTS - 1, 6)), policy_of("tpot_ms")).label == "insufficient data"


def test_a_shift_smaller_than_the_tolerance_is_suspicious_not_a_regression():
    found = detect(series(noisy(40, 25, 7, noise=0.002) + noisy(41.2, 25, 8, noise=0.002)), policy_of("tpot_ms"))
    assert found.label == "suspicious" and not found.shifts and found.weak[-1].worse


def test_detect_all_skips_info_metrics_and_sorts_worst_first():
    found = detect_all([series(noisy(40, 30, 9)), series(noisy(40, 20, 1) + noisy(46, 15, 2), test_id="t::b"),
                        series([1.0] * 30, metric="input_tokens")])
    assert [(c.label, c.series.test_id) for c in found] == [("regression", "t::b"), ("no change", "t::a")]


def baseline_file(folder, test_id, values):
    history = [{"run_id": f"r{i}", "commit": f"{i:040x}", "value": v, "host_ref_s": None} for i, v in enumerate(values)]
    data = {"schema_version": BASELINE_SCHEMA_VERSION, "machine_id": "m1", "test_id": test_id, "spec_id": "0" * 12,
            "spec": {}, "metrics": {"tpot_ms": {"unit": "ms", "history": history, "samples": []}}}
    return write_json_new(folder / "m1" / f"{test_id.replace(':', '_')}.json", data)


def test_the_command_over_a_baselines_folder(tmp_path, capsys):
    baseline_file(tmp_path, "t::slow", noisy(40, 20, 1) + noisy(46, 15, 2))
    baseline_file(tmp_path, "t::steady", noisy(40, 35, 3))
    baseline_file(tmp_path, "t::new", noisy(40, 3, 4))
    assert [s.test_id for s in series_from_baselines(tmp_path)] == ["t::new", "t::slow", "t::steady"]
    assert main(["changes", str(tmp_path), "--json", str(tmp_path / "cp.json")]) == 0
    out = capsys.readouterr().out
    assert "change points: 1 regression, 1 no change, 1 insufficient data" in out
    assert "regression   t::slow tpot_ms: 1.1" in out
    written = json.loads((tmp_path / "cp.json").read_text())
    assert {w["test_id"]: w["label"] for w in written} == {"t::slow": "regression", "t::steady": "no change",
                                                           "t::new": "insufficient data"}


def test_the_command_refuses_bad_input_naming_it(tmp_path, capsys):
    assert main(["changes", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "m1").mkdir()
    (tmp_path / "m1" / "case.json").write_text("{broken")
    assert main(["changes", str(tmp_path)]) == 2
    assert str(tmp_path / "m1" / "case.json") in capsys.readouterr().err


def test_records_and_asv_results_give_the_same_series(tmp_path):
    values = noisy(40, 20, 1) + noisy(46, 15, 2)
    paths = [write_json_new(tmp_path / "runs" / f"rec-{i:02d}.json",
                            {**record(commit=f"{i:02d}" * 20, tpot=v, started=f"2026-11-{1 + i // 24:02d}T{i % 24:02d}:00:00+00:00"),
                             "run_id": f"r{i}"})
             for i, v in enumerate(values)]
    tpot = next(s for s in series_from_records(paths) if s.metric == "tpot_ms")
    assert [p.value for p in tpot.points] == values
    export(paths, tmp_path / "asv" / "results")
    found, written = write_change_points(tmp_path / "asv" / "results")
    assert written == tmp_path / "asv" / CHANGE_POINTS_FILE
    by_metric = {c.series.metric.rsplit(".", 1)[-1]: c for c in found}
    assert by_metric["tpot_ms"].label == "regression" and by_metric["tpot_ms"].shifts[-1].index == 20
    assert published_policy("x.ms_per_output_tok").higher_is_better is False
