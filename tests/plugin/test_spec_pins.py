"""Saved baselines are keyed by (test id, spec_id): a refactor that changes either orphans them.

The golden file holds the spec_id of every suite case that records on this CPU (from a full
``make lab``). The fast test rebuilds each stored spec through the spec classes; the slow one runs
one case of every family through the real suites and compares the ids their records carry.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_inferlab.record.record import load_record
from pytest_inferlab.specs.core import RunSpec

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = json.loads((ROOT / "tests" / "golden" / "suite_spec_ids.json").read_text())["cases"]

# One case per family and kind of measurement, the cheapest of each (seconds, not minutes).
SAMPLED = [
    "suites/test_latency.py::test_latency[short-chat-4]",
    "suites/test_kv_cache.py::test_kv_cache[static-4]",
    "suites/test_kv_cache.py::test_paged[paged-64]",
    "suites/test_kv_cache.py::test_context_sweep_kv_heavy[dummy:kv-heavy-dynamic-512]",
    "suites/test_batching.py::test_concurrency[static-closed:16]",
    "suites/test_batching.py::test_open_loop[static-burst:8@2]",
    "suites/test_quantization.py::test_quantized[bf16-4]",
    "suites/test_speculative.py::test_speculative[prompt-lookup-copy-edit]",
    "suites/test_harness.py::test_harness_overhead[short-chat]",
]


@pytest.mark.parametrize("test_id", sorted(GOLDEN))
def test_stored_spec_rebuilds_to_its_id(test_id):
    case = GOLDEN[test_id]
    assert RunSpec.from_dict(case["spec"]).spec_id == case["spec_id"]


def test_every_pinned_case_is_still_collected():
    result = subprocess.run([sys.executable, "-m", "pytest", "suites/", "--collect-only", "-q", "-p", "no:cacheprovider"],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    collected = {line.strip() for line in result.stdout.splitlines() if "::" in line}
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    missing = sorted(set(GOLDEN) - collected)
    assert not missing, f"suite cases renamed or removed (their baselines would be orphaned): {missing}"


@pytest.mark.slow
@pytest.mark.timeout(900)  # nine real suite cases in a subprocess bounded at 900 s; 300 s ran out in a fresh clone
def test_sampled_suite_cases_record_their_pinned_spec_ids(tmp_path):
    command = [sys.executable, "-m", "pytest", *SAMPLED, "-p", "no:cacheprovider", "-q",
               f"--inferlab-results={tmp_path / 'results'}", f"--inferlab-baselines={tmp_path / 'baselines'}",
               "--inferlab-rounds=1", "--inferlab-warmup=0", "--inferlab-eval-limit=4", "--inferlab-host-ref=none",
               "--inferlab-threads=1"]  # one thread: it runs beside another xdist worker (its ids do not depend on it)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    records = [load_record(p) for p in (tmp_path / "results" / "runs").glob("*/*.json")]
    found = {r["test_id"]: r["spec_id"] for r in records}
    assert sorted(found) == sorted(SAMPLED)
    assert found == {test_id: GOLDEN[test_id]["spec_id"] for test_id in SAMPLED}
