"""The baselines store: history, errors that name the file, locking and atomic replacement."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from handmade_records import from_stored

from pytest_inferlab.record.baselines import HISTORY_LIMIT, BaselineError, BaselineStore


def record(run_id="r1", value=40.0, machine="cpu-abc", test_id="suites/t.py::test[x]", spec_id="0123456789ab",
           host_ref_s=None):
    return from_stored({
        "conditions": {"host_ref_s": host_ref_s},
        "run_id": run_id, "machine_id": machine, "test_id": test_id, "spec_id": spec_id, "spec": {"batch_size": 1},
        "environment": {"git": {"commit": "f" * 40}, "torch": "2.13.0", "threads": 1},
        "measurements": {"tpot_ms": {"unit": "ms", "value": value, "samples": [value - 1, value, value + 1]}},
    })


def test_save_appends_history_and_keeps_latest_samples(tmp_path):
    store = BaselineStore(tmp_path)
    path = store.save(record("r1", 40.0)).path
    store.save(record("r2", 42.0))
    assert path.parent == tmp_path / "cpu-abc" and path.name.startswith("suites_t.py_test_x-")
    assert path.name.endswith("-0123456789ab.json")
    baseline = store.load("cpu-abc", "suites/t.py::test[x]", "0123456789ab")
    assert baseline.history("tpot_ms") == [40.0, 42.0]
    assert baseline.data["metrics"]["tpot_ms"]["samples"] == [41.0, 42.0, 43.0]
    assert [h["run_id"] for h in baseline.data["metrics"]["tpot_ms"]["history"]] == ["r1", "r2"]
    assert baseline.fingerprint["threads"] == 1
    for i in range(HISTORY_LIMIT + 5):
        store.save(record(f"x{i}", 40.0 + i))
    assert len(store.load("cpu-abc", "suites/t.py::test[x]", "0123456789ab").history("tpot_ms")) == HISTORY_LIMIT


def test_history_keeps_the_host_speed_reference_of_each_run(tmp_path):
    store = BaselineStore(tmp_path)
    store.save(record("r1", 40.0, host_ref_s=0.07))
    store.save(record("r2", 42.0))
    assert store.load("cpu-abc", "suites/t.py::test[x]", "0123456789ab").runs("tpot_ms") == [(40.0, 0.07), (42.0, None)]


def test_missing_is_none_but_corrupt_is_an_error_and_never_overwritten(tmp_path):
    store = BaselineStore(tmp_path)
    assert store.find("cpu-abc", "suites/t.py::test[x]", "0123456789ab") == (None, True)
    path = store.save(record()).path
    path.write_text('{"schema_version": 1, "metrics": {"tpot')  # truncated
    with pytest.raises(BaselineError, match=f"baseline {path} is unreadable.*never treated as missing nor overwritten"):
        store.find("cpu-abc", "suites/t.py::test[x]", "0123456789ab")
    with pytest.raises(BaselineError):
        store.save(record("r2"))
    assert path.read_text() == '{"schema_version": 1, "metrics": {"tpot'


def test_unknown_schema_version_is_refused_with_advice(tmp_path):
    store = BaselineStore(tmp_path)
    path = store.save(record()).path
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "schema_version": 7}))
    with pytest.raises(BaselineError, match="has schema_version 7; this pytest-inferlab reads 1. Upgrade"):
        store.load("cpu-abc", "suites/t.py::test[x]", "0123456789ab")


def test_baseline_of_another_machine_is_found_but_flagged(tmp_path):
    store = BaselineStore(tmp_path)
    store.save(record(machine="gpu-h100-1234"))
    baseline, same_machine = store.find("cpu-abc", "suites/t.py::test[x]", "0123456789ab")
    assert baseline.machine_id == "gpu-h100-1234" and same_machine is False


def _saver(root, worker, count):
    store = BaselineStore(root)
    for i in range(count):
        store.save(record(f"w{worker}-{i}", 40.0 + i))


def test_concurrent_savers_lose_nothing(tmp_path, run_in_processes):
    run_in_processes(_saver, [(tmp_path, w, 10) for w in range(4)])
    baseline = BaselineStore(tmp_path).load("cpu-abc", "suites/t.py::test[x]", "0123456789ab")
    runs = sorted(h["run_id"] for h in baseline.data["metrics"]["tpot_ms"]["history"])
    assert runs == sorted(f"w{w}-{i}" for w in range(4) for i in range(10))


SAVE_FOREVER = """
import sys
from pytest_inferlab.record.baselines import BaselineStore
from pytest_inferlab.record.record import Record
store = BaselineStore(__import__("pathlib").Path(sys.argv[1]))
rec = {"schema_version": 1, "run_id": "r", "machine_id": "m", "test_id": "t", "spec_id": "s", "spec": {},
       "environment": {},
       "measurements": {f"metric_{i}": {"unit": "ms", "value": 1.0, "samples": [1.0] * 2000} for i in range(20)}}
print("ready", flush=True)
for i in range(10**9):
    store.save(Record.from_json({**rec, "run_id": f"r{i}"}, "x"))  # a new run each time: every save rewrites the file
"""


def test_a_kill_during_saving_leaves_the_old_file_whole(tmp_path):
    with subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(tmp_path)], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.5)  # many saves, each replacing a ~600 KB file
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    [path] = (tmp_path / "m").glob("t-*-s.json")
    data = json.loads(path.read_text())  # parses: the old or the new file, never half
    assert len(data["metrics"]) == 20 and len(data["metrics"]["metric_0"]["samples"]) == 2000
