"""Scale-out: --inferlab-shard=I/N splits a suite deterministically; merged shards give the same
records as one run; bad shard specs are usage errors."""

import json
import subprocess
import sys

import pytest

from pytest_inferlab.plugin.shard import Shard, assign, parse_shard, select

ARGS = ("--inferlab-model=dummy:tiny", "--inferlab-rounds=1", "--inferlab-warmup=0", "--inferlab-threads=1",
        "--inferlab-host-ref=none", "-p", "no:cacheprovider")

SUITE = """
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 1, "output_tokens": 3}

@pytest.mark.parametrize("case", range(5))
def test_case(lab, model, workload, case):
    lab.measure(model, workload)
"""


def run_records(folder):
    return {p.name: json.loads(p.read_text()) for p in folder.glob("*.json")}


@pytest.mark.slow  # three pytest runs of a suite and a merge (~50 s here)
def test_shards_split_the_cases_and_merge_to_the_same_records_as_one_run(pytester):
    pytester.makepyfile(test_suite=SUITE)
    whole = pytester.runpytest_inprocess(*ARGS, "--inferlab-results=whole")
    assert whole.ret == 0, whole.stdout.str()
    shard_dirs = []
    for index in (1, 2):
        result = pytester.runpytest_inprocess(*ARGS, f"--inferlab-shard={index}/2", "--inferlab-results=shards")
        assert result.ret == 0, result.stdout.str()
        result.stdout.fnmatch_lines([f"*{3 if index == 1 else 2} passed, {2 if index == 1 else 3} deselected*"])
        shard_dirs.append(max((pytester.path / "shards" / "runs").iterdir(), key=lambda p: p.stat().st_mtime))
    merged = subprocess.run([sys.executable, "-m", "pytest_inferlab.cli", "merge-runs", *map(str, shard_dirs),
                             "--results", str(pytester.path / "merged"), "--run-id", "all"],
                            capture_output=True, text=True)
    assert merged.returncode == 0, merged.stderr
    [whole_dir] = (pytester.path / "whole" / "runs").iterdir()
    one, parts = run_records(whole_dir), run_records(pytester.path / "merged" / "runs" / "all")
    assert sorted(one) == sorted(parts) and len(one) == 5
    for name in one:
        assert (one[name]["spec_id"], one[name]["test_id"]) == (parts[name]["spec_id"], parts[name]["test_id"])
        assert parts[name]["run_id"] == "all" and parts[name]["conditions"]["shard"] in ("1/2", "2/2")
        assert parts[name]["conditions"]["merged_from"] != "all"
    # balanced by the whole run's durations: still disjoint and complete
    picked = []
    for index in (1, 2):
        result = pytester.runpytest_inprocess(*ARGS, f"--inferlab-shard={index}/2", "--inferlab-results=timed",
                                               f"--inferlab-shard-durations={whole_dir}", "-v")
        assert result.ret == 0, result.stdout.str()
        picked.append({line.split("::")[1].split(" ")[0] for line in result.stdout.lines if "PASSED" in line})
    assert not picked[0] & picked[1] and len(picked[0] | picked[1]) == 5
    again = subprocess.run([sys.executable, "-m", "pytest_inferlab.cli", "merge-runs", str(shard_dirs[0]),
                            str(shard_dirs[0]), "--results", str(pytester.path / "merged")], capture_output=True, text=True)
    assert again.returncode == 2 and "the same case measured twice" in again.stderr


@pytest.mark.parametrize("spec", ["3/2", "0/0", "1-2", "0/3"])
def test_a_shard_out_of_range_is_a_usage_error(pytester, spec):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess(*ARGS, f"--inferlab-shard={spec}")
    assert result.ret == 4
    result.stderr.fnmatch_lines([f"*--inferlab-shard*{spec}*"])


def test_assignment_is_balanced_by_cost_and_deterministic():
    costs = {"a": 10.0, "b": 6.0, "c": 5.0, "d": 4.0, "e": 1.0}
    assert assign(costs, 2) == {"a": 1, "b": 2, "c": 2, "d": 1, "e": 2}  # loads 14 and 12
    assert assign(costs, 2) == assign(dict(reversed(list(costs.items()))), 2)
    chosen = [select(costs, Shard(i, 3), costs) for i in (1, 2, 3)]
    assert set().union(*chosen) == set(costs) and sum(map(len, chosen)) == 5
    assert parse_shard("2/4") == Shard(2, 4)
    with pytest.raises(ValueError, match="1 <= I <= N"):
        parse_shard("5/4")


def test_durations_from_a_run_with_an_unreadable_record_name_the_file(tmp_path):
    from pytest_inferlab.plugin.shard import run_durations
    from pytest_inferlab.record.record import RecordError

    (tmp_path / "case.json").write_text('{"schema_version": 1, "test_id": "t"')  # cut short by a crash
    with pytest.raises(RecordError, match="case.json"):
        run_durations(tmp_path)  # a balance from part of a run would be silently wrong
