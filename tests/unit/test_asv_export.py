"""Records -> asv results: every format fact and silent-drop trap of outputs/asv_export.py, read back by asv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asv.results import Results, iter_results

from pytest_inferlab.outputs.asv_export import INVERTED, benchmark_base, export, find_records
from pytest_inferlab.ground.jsonio import write_json_new

COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


def record(commit=COMMIT_A, machine="cpu-m1", tpot=40.0, tok_s=25.0, batch=1, dirty=False, started="2026-11-24T01:00:00+00:00",
           test_id="suites/test_latency.py::test_latency[short-chat-1]", params=None):
    return {
        "schema_version": 1, "run_id": "r", "test_id": test_id,
        "params": {"workload": "short-chat", "batch_size": batch} if params is None else params,
        "spec_id": "0123456789ab", "spec": {"model": {"name": "smollm2-135m"}}, "machine_id": machine,
        "started_at": started,
        "environment": {"python": "3.11.7", "platform": "Linux", "arch": "x86_64", "cpu_count": 2,
                        "git": {"commit": commit, "dirty": dirty, "commit_time": 1795000000}},
        "measurements": {
            "tpot_ms": {"unit": "ms", "value": tpot, "samples": [tpot - 1, tpot, tpot + 1, tpot + 0.5]},
            "output_tok_per_s": {"unit": "tok/s", "value": tok_s, "samples": [tok_s - 1, tok_s, tok_s + 1]},
            "tokens_per_delivery": {"unit": "tokens", "value": 1.0, "samples": [1.0]},
            "peak_mem_bytes": {"unit": "B", "value": 9.5e8, "samples": []},
        },
    }


def write(folder: Path, *records) -> list[Path]:
    return [write_json_new(folder / f"rec-{i}.json", r) for i, r in enumerate(records)]


def test_format_facts_and_asv_reads_every_value_back(tmp_path):
    paths = write(tmp_path / "runs", record(batch=1, tpot=40.0), record(batch=4, tpot=55.0, tok_s=60.0))
    out = tmp_path / "results"
    summary = export(paths, out)
    assert summary.points == 6 and len(summary.benchmarks) == 3
    benchmarks = json.loads((out / "benchmarks.json").read_text())
    assert benchmarks["version"] == 2
    name = "suites.test_latency.test_latency.tpot_ms"
    assert set(benchmarks) - {"version"} == {name, "suites.test_latency.test_latency.ms_per_output_tok",
                                             "suites.test_latency.test_latency.peak_mem_bytes"}
    bench = benchmarks[name]
    assert bench["type"] == "track" and bench["unit"] == "ms" and isinstance(bench["version"], str)
    assert bench["param_names"] == ["workload", "batch_size"]
    assert bench["params"] == [["'short-chat'"], ["1", "4"]]  # repr strings, never ints
    assert benchmarks["suites.test_latency.test_latency.peak_mem_bytes"]["unit"] == "bytes"
    machine = json.loads((out / "cpu-m1" / "machine.json").read_text())
    assert machine["version"] == 1 and machine["machine"] == "cpu-m1"
    [path] = (out / "cpu-m1").glob("aaaaaaaa-*.json")
    data = json.loads(path.read_text())
    assert data["commit_hash"] == COMMIT_A and data["version"] == 2 and data["requirements"] == {}
    assert data["date"] == 1795000000 * 1000
    assert data["results"][name][2] == bench["version"]  # same string as benchmarks.json
    # asv's own loader: nothing silently dropped
    [loaded] = list(iter_results(str(out)))
    assert loaded.commit_hash == COMMIT_A
    assert loaded.get_result_value(name, bench["params"]) == [40.0, 55.0]
    per_token = loaded.get_result_value("suites.test_latency.test_latency.ms_per_output_tok",
                                        benchmarks["suites.test_latency.test_latency.ms_per_output_tok"]["params"])
    assert per_token == pytest.approx([1e3 / 25.0, 1e3 / 60.0])
    stats = loaded.get_result_stats(name, bench["params"])[0]
    assert stats["ci_99_a"] < 40.0 < stats["ci_99_b"] and stats["repeat"] == 4


def test_higher_is_better_metrics_are_published_inverted_or_not_at_all():
    assert INVERTED["output_tok_per_s"].name == "ms_per_output_tok"
    assert INVERTED["output_tok_per_s"].transform(20.0) == 50.0
    assert benchmark_base("suites/sub/test_x.py::TestA::test_b[p-1]") == "suites.sub.test_x.TestA.test_b"


def test_history_of_commits_and_machines_in_one_tree_and_re_export_is_idempotent(tmp_path):
    paths = write(tmp_path / "runs", record(COMMIT_A), record(COMMIT_B, tpot=44.0),
                  record(COMMIT_A, machine="gpu-h100"))
    out = tmp_path / "results"
    export(paths, out)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert files == ["benchmarks.json", "cpu-m1/aaaaaaaa-inferlab-smollm2-135m.json",
                     "cpu-m1/bbbbbbbb-inferlab-smollm2-135m.json", "cpu-m1/machine.json",
                     "gpu-h100/aaaaaaaa-inferlab-smollm2-135m.json", "gpu-h100/machine.json"]
    before = {p: p.read_bytes() for p in out.rglob("*.json")}
    export(paths, out)
    export(list(reversed(paths)), out)
    assert {p: p.read_bytes() for p in out.rglob("*.json")} == before


def test_the_newer_run_wins_a_cell_measured_twice_and_other_cells_are_kept(tmp_path):
    out = tmp_path / "results"
    export(write(tmp_path / "one", record(batch=1, tpot=40.0, started="2026-11-24T02:00:00+00:00")), out)
    export(write(tmp_path / "two", record(batch=1, tpot=50.0, started="2026-11-24T01:00:00+00:00"),
                 record(batch=4, tpot=60.0, started="2026-11-24T01:00:00+00:00")), out)
    name = "suites.test_latency.test_latency.tpot_ms"
    [loaded] = list(iter_results(str(out)))
    assert loaded.get_result_value(name, [["'short-chat'"], ["1", "4"]]) == [40.0, 60.0]


def test_a_corrupt_record_is_named_and_skipped_the_rest_exports(tmp_path):
    good = write(tmp_path / "runs", record())
    bad = tmp_path / "runs" / "broken.json"
    bad.write_text('{"schema_version": 1, "run_id": ')
    warned = []
    summary = export([*good, bad], tmp_path / "results", warn=warned.append)
    assert summary.points == 3
    assert len(warned) == 1 and str(bad) in warned[0]


def test_records_without_a_commit_or_with_uncommitted_changes_are_skipped_with_the_reason(tmp_path):
    no_git = record()
    no_git["environment"]["git"] = {"commit": None, "dirty": None}
    paths = write(tmp_path / "runs", no_git, record(dirty=True))
    warned = []
    summary = export(paths, tmp_path / "results", warn=warned.append)
    assert summary.points == 0 and not (tmp_path / "results" / "benchmarks.json").exists()
    assert "outside a git checkout" in warned[0]
    assert "uncommitted changes on top of aaaaaaaa" in warned[1] and "--include-dirty" in warned[1]
    included = export(paths[1:], tmp_path / "results", include_dirty=True)
    assert included.points == 3


def test_hostile_parameters_are_exported_as_repr_strings(tmp_path):
    hostile = {"label": "<script>alert(1)</script>", "quote": "it's \"x\""}
    export(write(tmp_path / "runs", record(params=hostile, test_id="suites/t.py::test_x[<script>]")), tmp_path / "r")
    bench = json.loads((tmp_path / "r" / "benchmarks.json").read_text())["suites.t.test_x.tpot_ms"]
    assert bench["params"] == [["'<script>alert(1)</script>'"], ["'it\\'s \"x\"'"]]
    [loaded] = list(iter_results(str(tmp_path / "r")))
    assert loaded.get_result_value("suites.t.test_x.tpot_ms", bench["params"]) == [40.0]


def test_an_asv_file_of_another_version_is_refused_not_overwritten(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "benchmarks.json").write_text('{"version": 1}')
    with pytest.raises(ValueError, match="benchmarks.json has version 1, expected 2"):
        export(write(tmp_path / "runs", record()), out)
    assert (out / "benchmarks.json").read_text() == '{"version": 1}'


def test_find_records_ignores_temp_files(tmp_path):
    write(tmp_path / "runs" / "r1", record())
    (tmp_path / "runs" / "r1" / ".tmp-x.json").write_text("{")
    assert [p.name for p in find_records(tmp_path)] == ["rec-0.json"]


def test_results_load_rejects_nothing_we_write(tmp_path):
    paths = write(tmp_path / "runs", record())
    export(paths, tmp_path / "results")
    for path in (tmp_path / "results" / "cpu-m1").glob("a*.json"):
        assert Results.load(str(path), machine_name="cpu-m1").env_name == "inferlab-smollm2-135m"
