"""A temporary git repository with ten commits of real records (dummy:tiny), a slowdown planted in
one test from the sixth commit on, exported through --inferlab-asv and published by asv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMITS = 10
PLANTED_AT = 6  # 1-based: commits 6..10 carry the slowdown
SUITE = '''
import pytest

# Every token sleeps BASE_MS, so host drift (tens of ms per request on a busy 2-core host) is small
# beside it; from the planted commit on, test_slow sleeps SLOW_MS more. At 10 ms x 8 tokens a stall
# once made ms_per_req jump 50% at an unplanted commit in CI: 20 ms x 16 tokens leaves it 4x the room.
BASE_MS, SLOW_MS = 20, {slow_ms}

@pytest.fixture
def workload_overrides():
    return {{"count": 2, "output_tokens": 16}}

@pytest.mark.parametrize("label", ["<script>window.__pwned = 1</script>", "it's \\"quoted\\""])
def test_fast(lab, model, workload, label, monkeypatch):
    monkeypatch.setenv("INFERLAB_TEST_TOKEN_DELAY_MS", str(BASE_MS))
    lab.measure(model, workload)

def test_slow(lab, model, workload, monkeypatch):
    monkeypatch.setenv("INFERLAB_TEST_TOKEN_DELAY_MS", str(BASE_MS + SLOW_MS))
    lab.measure(model, workload)
'''
ASV_CONF = {
    "version": 1, "project": "history-test", "repo": ".", "branches": ["main"], "environment_type": "existing",
    "results_dir": ".asv/results", "html_dir": ".asv/html",
    # the planted step is ~3x; run-to-run jitter stays far below 50%
    "regressions_thresholds": {".*": 0.5},
}
# 4 rounds: per-round series (tokens/s -> ms_per_output_tok) get 4 samples. With 2, asv's 99%
# interval uses t(df=1) = 63.7 and spans 10x; asv's step detection then down-weights those points
# and missed the planted 3x step in ms_per_output_tok once in CI.
RUN = ("--inferlab-model=dummy:tiny", "--inferlab-threads=1", "--inferlab-rounds=4", "--inferlab-no-gate",
       "-p", "no:cacheprovider", "-q", "-p", "planted_delay")  # tools/planted_delay.py: the planted slowdown
TOOLS = str(Path(__file__).resolve().parents[2] / "tools")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def asv(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asv", *args], cwd=repo, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def history_repo(tmp_path_factory) -> dict:
    """{"repo", "commits", "machine"}: records of 10 commits exported and published."""
    repo = tmp_path_factory.mktemp("history")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "lab@example.invalid")
    git(repo, "config", "user.name", "lab")
    (repo / "asv.conf.json").write_text(json.dumps(ASV_CONF, indent=1))
    (repo / ".gitignore").write_text(".asv/\n.inferlab/\n.benchmarks/\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [TOOLS, os.environ.get("PYTHONPATH")]))}
    env.pop("INFERLAB_TEST_TOKEN_DELAY_MS", None)
    commits = []
    for number in range(1, COMMITS + 1):
        (repo / "test_suite.py").write_text(SUITE.format(slow_ms=60 if number >= PLANTED_AT else 0))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "--allow-empty", "-m", f"commit {number}")
        commits.append(git(repo, "rev-parse", "HEAD"))
        # a subprocess each: the planted delay patches the engine class a run resolves, and a pytester run
        # earlier in this process can leave the engine registry holding a class no later import patches
        done = subprocess.run([sys.executable, "-m", "pytest", *RUN, "--inferlab-asv=.asv/results"], cwd=repo,
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "asv: 3" in done.stdout or "asv: " in done.stdout, done.stdout
    published = asv(repo, "publish")
    assert published.returncode == 0, published.stdout + published.stderr
    [machine] = [p.name for p in (repo / ".asv" / "results").iterdir() if p.is_dir()]
    return {"repo": repo, "commits": commits, "machine": machine}
