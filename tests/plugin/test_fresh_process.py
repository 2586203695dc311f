"""--inferlab-fresh-process: each case in its own process, joining one run; a crash fails its case
alone; the run's report names the failing cases at its top."""

import json

SUITE = """
import os
import signal

import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 1, "output_tokens": 4}

def test_a(lab, model, workload):
    lab.measure(model, workload)

def test_b(lab, model, workload):
    lab.measure(model, workload)

def test_crash(lab):
    os.kill(os.getpid(), signal.SIGSEGV)  # a native library's segfault, as llama.cpp's AMX path once did
"""


def test_every_case_runs_in_a_fresh_process_and_a_crash_fails_only_its_own(pytester):
    pytester.makepyfile(test_fresh=SUITE)
    result = pytester.runpytest_subprocess("--inferlab-model=dummy:tiny", "--inferlab-rounds=1", "--inferlab-warmup=0",
                                           "--inferlab-fresh-process", "-p", "no:cacheprovider")
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*the fresh process of this case died with signal 11*", "*1 failed, 2 passed*"])
    [run] = (pytester.path / ".inferlab" / "runs").iterdir()
    records = [json.loads(p.read_text()) for p in sorted(run.glob("*.json"))]
    processes = [r["conditions"]["process"] for r in records]
    assert len(records) == 2 and len({p["pid"] for p in processes}) == 2
    assert all(p["fresh"] and p["cases_before"] == 0 for p in processes)
    manifest = json.loads((run / "inferlab-run.manifest").read_text())
    assert manifest["status"] == "finished" and manifest["exit_status"] == 1
    [failure] = manifest["failures"]
    assert failure["nodeid"] == "test_fresh.py::test_crash" and "signal 11" in failure["reason"]
    page = (run / "report.html").read_text()
    assert page.index("1 case(s) failed") < page.index("What was found") and "test_crash" in page
