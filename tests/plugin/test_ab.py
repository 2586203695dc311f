"""`inferlab ab BASE` end to end: a git repository of a small suite on dummy:tiny, its working tree
changed (a planted slowdown, a new case, a crash), both sides measured in lock-step."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_inferlab.ab.run import DEFAULT_ROUNDS

pytestmark = pytest.mark.alone  # judges paired timings of two sides

TOOLS = str(Path(__file__).resolve().parents[2] / "tools")
SUITE = '''
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 2, "output_tokens": 8}

@pytest.mark.inferlab(rounds=6, warmup=1)
def test_latency(lab, model, workload):
    lab.measure(model, workload)
'''
PLANTED = '''
import os
import planted_delay
os.environ["INFERLAB_TEST_TOKEN_DELAY_MS"] = "4"  # dummy:tiny makes a token in ~3 ms: ~2x slower
planted_delay.install()
'''
ARGS = ("--", "--inferlab-model=dummy:tiny", "--inferlab-threads=1")


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=lab@example.invalid", "-c", "user.name=lab", *args],
                   check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "project"
    repo.mkdir()
    (repo / "test_suite.py").write_text(SUITE)
    (repo / "conftest.py").write_text("")
    (repo / ".gitignore").write_text(".inferlab/\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    return repo


def ab(repo, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [TOOLS, os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "pytest_inferlab.cli", "ab", *args]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, env=env, timeout=600)


def the_run(repo):
    [folder] = (repo / ".inferlab" / "ab").iterdir()
    return folder


def test_a_revision_against_itself_is_never_a_regression(repo):
    done = ab(repo, "HEAD", *ARGS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "regressed" not in done.stdout.split("A/B verdicts")[1]
    verdicts = json.loads((the_run(repo) / "verdicts.json").read_text())
    outcomes = {v["metric"]: v["outcome"] for v in verdicts["cases"][0]["verdicts"]}
    assert set(outcomes) >= {"ttft_ms", "tpot_ms", "e2e_ms", "output_tok_per_s"}
    assert set(outcomes.values()) <= {"unchanged", "inconclusive"}
    assert not (repo / ".inferlab" / "ab" / the_run(repo).name / "base-tree").exists()  # the worktree is removed
    assert "base-tree" not in subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True,
                                             text=True).stdout


@pytest.mark.slow
def test_a_planted_slowdown_in_the_working_tree_regresses_and_both_sides_are_kept(repo):
    (repo / "conftest.py").write_text(PLANTED)
    done = ab(repo, "HEAD", *ARGS)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "uncommitted changes in 1 file(s)" in done.stdout
    assert json.loads((the_run(repo) / "verdicts.json").read_text())["candidate"]["uncommitted_files"] == ["conftest.py"]
    assert "test_suite.py::test_latency: tpot_ms: REGRESSED" in done.stdout
    run = the_run(repo)
    for side in ("base", "candidate"):
        [record] = (run / side / "runs").glob("*/*.json")
        data = json.loads(record.read_text())
        assert len(data["round_values"]["tpot_ms"]) == DEFAULT_ROUNDS  # the A/B's pairs beat the marker's rounds=6
    turns = json.loads((run / "turns.json").read_text())
    rounds = [(t["side"][0], t["index"]) for t in turns if t["kind"] == "round"]
    assert rounds[:8] == [("b", 0), ("c", 0), ("c", 1), ("b", 1), ("b", 2), ("c", 2), ("c", 3), ("b", 3)]


@pytest.mark.slow
def test_cases_on_one_side_only_are_listed_and_not_compared(repo):
    (repo / "test_suite.py").write_text(SUITE + SUITE.split("\n\n", 2)[2].replace("test_latency", "test_latency_new"))
    done = ab(repo, "HEAD", *ARGS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "only on the candidate side, not compared: test_suite.py::test_latency_new" in done.stdout
    verdicts = json.loads((the_run(repo) / "verdicts.json").read_text())
    assert [c["test_id"] for c in verdicts["cases"]] == ["test_suite.py::test_latency"]
    assert verdicts["candidate_only"] == ["test_suite.py::test_latency_new"]


@pytest.mark.slow
def test_a_base_side_that_crashes_fails_the_run_and_keeps_the_candidates_records(repo):
    (repo / "conftest.py").write_text("import os\n\ndef pytest_runtest_call(item):\n    os._exit(3)\n")
    git(repo, "commit", "-qam", "a base that dies")
    (repo / "conftest.py").write_text("")
    done = ab(repo, "HEAD", *ARGS)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the base side exited with code 3; its log: " in done.stdout
    assert "died" not in done.stdout and (the_run(repo) / "base.log").is_file()
    assert list((the_run(repo) / "candidate" / "runs").glob("*/*.json"))


def test_bad_input_is_an_error_naming_it(repo, tmp_path):
    done = ab(repo, "no-such-branch", *ARGS)
    assert done.returncode == 2 and "BASE 'no-such-branch' is not a revision of" in done.stdout
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    done = ab(outside, "HEAD", *ARGS)
    assert done.returncode == 2 and "is not inside a git checkout" in done.stdout
    done = ab(repo, "HEAD", "--base-python", "/no/such/python", *ARGS)  # options after BASE work too
    assert done.returncode == 2 and "--base-python '/no/such/python'" in done.stdout
    assert not (repo / ".inferlab").exists()  # nothing written


@pytest.mark.slow
def test_the_pytest_option_runs_the_same_ab(repo):
    (repo / "conftest.py").write_text(PLANTED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [TOOLS, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "pytest", "--inferlab-ab=HEAD", "--inferlab-model=dummy:tiny",
                           "--inferlab-threads=1", "-p", "no:cacheprovider"], cwd=repo, capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "tpot_ms: REGRESSED" in done.stdout
