"""asv's own tools read the exported history: regressions page, compare, idempotent re-export."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import PLANTED_AT, asv

# builds ten commits of real records first (~5 min here): more than pytest-timeout's default 300 s
pytestmark = [pytest.mark.slow, pytest.mark.alone, pytest.mark.timeout(900)]

DECODE_TIMED = {"tpot_ms", "itl_ms", "itl_p25_ms", "e2e_ms", "ms_per_output_tok", "ms_per_total_tok", "ms_per_req"}


def test_regressions_page_lists_exactly_the_slowed_test_at_the_planted_commit(history_repo):
    html = history_repo["repo"] / ".asv" / "html"
    regressions = json.loads((html / "regressions.json").read_text())["regressions"]
    revision_to_hash = json.loads((html / "index.json").read_text())["revision_to_hash"]
    flagged = {}
    for name, _graph, _params, _idx, _last, _best, jumps in regressions:
        flagged[name] = {revision_to_hash[str(after)] for _before, after, _old, _new in jumps}
    planted = history_repo["commits"][PLANTED_AT - 1]
    slowed = {name.removeprefix("test_suite.test_slow.") for name in flagged}
    assert all(name.startswith("test_suite.test_slow.") for name in flagged), flagged  # never test_fast
    assert {"tpot_ms", "e2e_ms", "ms_per_output_tok"} <= slowed <= DECODE_TIMED | {"ttft_ms"}, flagged
    assert all(commits == {planted} for commits in flagged.values()), (planted, flagged)


def test_asv_compare_marks_the_slowed_benchmarks_worse(history_repo):
    repo, commits = history_repo["repo"], history_repo["commits"]
    done = asv(repo, "compare", commits[PLANTED_AT - 2], commits[PLANTED_AT - 1], "--machine", history_repo["machine"],
               "--split", "--factor", "1.5")  # as the repository's regression threshold: dummy:tiny jitters
    assert done.returncode == 0, done.stdout + done.stderr
    worse = done.stdout.split("Benchmarks that have got worse:")[1]
    worse_lines = [line for line in worse.splitlines() if line.startswith("| +")]
    assert any("test_suite.test_slow.tpot_ms" in line for line in worse_lines), done.stdout
    # the planted delay is per token: the fast test's per-token figures must not move. Its first-token
    # time (~6 ms on dummy:tiny, one run per commit, no host reference in asv compare) once read 1.68x
    # in a fresh-clone CI run on a slow evening with nothing planted: not a figure a 1.5 factor can judge
    fast = [line for line in worse_lines if "test_fast" in line]
    assert not any(f"test_fast.{metric}" in line for line in fast for metric in DECODE_TIMED), done.stdout


def test_both_commits_of_a_series_are_plotted(history_repo):
    html = history_repo["repo"] / ".asv" / "html"
    [graph] = (html / "graphs" / "branch-main").rglob("test_suite.test_slow.tpot_ms.json")
    points = json.loads(graph.read_text())
    assert len([p for p in points if p[1] is not None]) == len(history_repo["commits"])


def test_re_exporting_the_same_runs_changes_nothing(history_repo):
    results = history_repo["repo"] / ".asv" / "results"
    before = {p: p.read_bytes() for p in results.rglob("*.json")}
    done = subprocess.run([sys.executable, "-m", "pytest_inferlab.cli", "asv-export", ".inferlab"],
                          cwd=history_repo["repo"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("asv: ") and "-> .asv/results" in done.stdout, done.stdout
    assert {p: p.read_bytes() for p in results.rglob("*.json")} == before
