"""Records are written whole, never overwritten, and survive concurrent writers."""

import json
import os

import pytest

from pytest_inferlab.record.record import RecordError, load_record, parse_record, read_record
from pytest_inferlab.ground.jsonio import write_json_new
from pytest_inferlab.record.naming import safe_name


def test_write_never_overwrites_and_leaves_no_temp_files(tmp_path):
    first = write_json_new(tmp_path / "case.json", {"n": 1})
    second = write_json_new(tmp_path / "case.json", {"n": 2})
    assert first.name == "case.json" and second.name == "case-2.json"
    assert json.loads(first.read_text()) == {"n": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case-2.json", "case.json"]


def test_unserializable_value_writes_nothing(tmp_path):
    with pytest.raises(ValueError):
        write_json_new(tmp_path / "case.json", {"x": float("nan")})
    assert list(tmp_path.iterdir()) == []


def _writer(folder, worker, count):
    for i in range(count):
        write_json_new(folder / "same-name.json", {"worker": worker, "i": i, "pad": "x" * 5000})


def test_concurrent_processes_lose_nothing(tmp_path, run_in_processes):
    run_in_processes(_writer, [(tmp_path, w, 25) for w in range(4)])
    docs = [json.loads(p.read_text()) for p in tmp_path.iterdir()]
    assert len(docs) == 100
    assert sorted((d["worker"], d["i"]) for d in docs) == [(w, i) for w in range(4) for i in range(25)]


def test_safe_name_keeps_ids_readable_and_filesystem_safe():
    assert safe_name("suites/test_latency.py::test_latency[short-chat-1]") == "suites_test_latency.py_test_latency_short-chat-1"
    assert "/" not in safe_name('a/"<script>"::b') and safe_name("") == "case"
    assert len(safe_name("x" * 500)) == 120


def test_unreadable_or_wrong_version_records_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "run_id": ')
    with pytest.raises(RecordError, match=f"record {bad} is unreadable"):
        load_record(bad)
    with pytest.raises(RecordError, match="x.json: schema_version 99 is not supported"):
        parse_record({"schema_version": 99}, "x.json")
    with pytest.raises(RecordError, match="missing field"):
        parse_record({"schema_version": 1}, "x.json")
    assert os.path.exists(bad)  # reading never deletes or rewrites
    # read typed, a field of the wrong shape is the same kind of error, naming the file
    shaped = tmp_path / "shaped.json"
    shaped.write_text(json.dumps({"schema_version": 1, "run_id": "r", "test_id": "t", "spec_id": "a", "spec": {},
                                  "measurements": {"tpot_ms": 40.0}, "environment": {}, "machine_id": "m"}))
    with pytest.raises(RecordError, match=f"{shaped}: a field does not read as a record's"):
        read_record(shaped)
    with pytest.raises(RecordError, match=f"record {bad} is unreadable"):
        read_record(bad)
