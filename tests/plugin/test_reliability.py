"""Records and baselines under faults: nothing lost, nothing doubled, no two cases in one file, and
errors a user can act on. Each case asserts the message and that nothing earlier changed."""

import json
import os
import stat
import subprocess
import sys

import pytest
from handmade_records import from_stored

from pytest_inferlab.record.baselines import BaselineError, BaselineStore, save_valid
from pytest_inferlab.record.naming import baseline_filename, legacy_baseline_filename
from pytest_inferlab.cli import main
from pytest_inferlab.ground.jsonio import remove_stale_temps, write_json_new, write_json_replace
from pytest_inferlab.record.record import record_files
from pytest_inferlab.record.store import RecordStore

ARGS = ("--inferlab-model=dummy:tiny", "--inferlab-rounds=1", "--inferlab-warmup=0", "--inferlab-threads=1",
        "-p", "no:cacheprovider")
SUITE = """
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 1, "output_tokens": 4}

def test_latency(lab, model, workload):
    lab.measure(model, workload)
"""


def record(run_id="r1", test_id="s.py::t", value=40.0, machine="cpu-1", invalid=None):
    return {"schema_version": 1, "run_id": run_id, "test_id": test_id, "spec_id": "abc", "spec": {},
            "machine_id": machine, "environment": {"git": {"commit": "a" * 40}},
            "conditions": {"invalid": invalid},
            "measurements": {"tpot_ms": {"unit": "ms", "value": value, "samples": [value]}}}


def write_run(folder, *records):
    folder.mkdir(parents=True, exist_ok=True)
    for number, rec in enumerate(records):
        (folder / f"case{number}.json").write_text(json.dumps(rec))
    return folder


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def history(store, test_id, machine="cpu-1"):
    return [h["run_id"] for h in store.load(machine, test_id, "abc").data["metrics"]["tpot_ms"]["history"]]


# ---- saving: idempotent and all or nothing -----------------------------------------------------

def test_saving_the_same_run_twice_appends_it_once_and_says_so(tmp_path, capsys):
    run = write_run(tmp_path / "run", record("r1"))
    baselines = tmp_path / "baselines"
    assert main(["save-baseline", str(run), "--baselines", str(baselines)]) == 0
    before = snapshot(baselines)
    assert main(["save-baseline", str(run), "--baselines", str(baselines)]) == 0
    out = capsys.readouterr().out
    assert "baselines: 0 saved, 1 already in their history, 0 left out" in out
    assert "run r1 is already in its history, not appended again" in out
    assert snapshot(baselines) == before and history(BaselineStore(baselines), "s.py::t") == ["r1"]


def test_one_unreadable_baseline_writes_nothing_and_a_retry_appends_each_case_once(tmp_path, capsys):
    baselines = tmp_path / "baselines"
    store = BaselineStore(baselines)
    store.save(from_stored(record("r0", test_id="s.py::a")))
    broken = store.save(from_stored(record("r0", test_id="s.py::b"))).path
    broken.write_text("{not json")
    before = snapshot(baselines)
    run = write_run(tmp_path / "run", record("r1", test_id="s.py::a"), record("r1", test_id="s.py::b"),
                    record("r1", test_id="s.py::c"))
    assert main(["save-baseline", str(run), "--baselines", str(baselines)]) == 2
    err = capsys.readouterr().err
    assert err == (f"inferlab: baseline {broken} is unreadable (Expecting property name enclosed in double quotes: "
                   "line 1 column 2 (char 1)); fix it or restore it from git (it is never treated as missing nor "
                   "overwritten); nothing was saved\n")
    assert snapshot(baselines) == before  # s.py::a not appended, s.py::c not created
    broken.unlink()  # the user restores the file (here: removes it), then retries
    store.save(from_stored(record("r0", test_id="s.py::b")))
    assert main(["save-baseline", str(run), "--baselines", str(baselines)]) == 0
    assert main(["save-baseline", str(run), "--baselines", str(baselines)]) == 0
    assert [history(store, f"s.py::{name}") for name in "abc"] == [["r0", "r1"], ["r0", "r1"], ["r1"]]


def test_a_failure_while_writing_changes_no_baseline(tmp_path):
    store = BaselineStore(tmp_path)
    store.save(from_stored(record("r0", test_id="s.py::a")))
    before = snapshot(tmp_path)
    with pytest.raises(ValueError):  # NaN is not JSON: the second file cannot be written
        store.save_all([from_stored(record("r1", test_id="s.py::a")), from_stored(record("r1", test_id="s.py::b", value=float("nan")))])
    assert snapshot(tmp_path) == before


# ---- one case, one file ---------------------------------------------------------------------------

def test_ids_that_slug_alike_or_differ_past_the_slug_get_files_of_their_own(tmp_path):
    store = BaselineStore(tmp_path)
    ids = ["s.py::t[a/b]", "s.py::t[a_b]", "s.py::t[a:b]", "s.py::t[" + "x" * 150 + "1]", "s.py::t[" + "x" * 150 + "2]"]
    paths = {store.save(from_stored(record("r1", test_id=test_id))).path for test_id in ids}
    assert len(paths) == 5 and len(list((tmp_path / "cpu-1").glob("*.json"))) == 5
    assert all(history(store, test_id) == ["r1"] for test_id in ids)
    assert all(len(p.name) < 120 for p in paths)


def test_a_file_of_another_test_id_is_an_error_never_a_merge(tmp_path):
    store = BaselineStore(tmp_path)
    path = store.save(from_stored(record("r1", test_id="s.py::a"))).path
    data = json.loads(path.read_text())
    target = tmp_path / "cpu-1" / baseline_filename("s.py::b", "abc")
    target.write_text(json.dumps(data))  # s.py::a's content under s.py::b's name
    before = snapshot(tmp_path)
    message = f"baseline {target} belongs to test 's.py::a', not 's.py::b': it is never merged into"
    with pytest.raises(BaselineError, match=message.replace("[", r"\[").replace(".", r"\.")):
        store.find("cpu-1", "s.py::b", "abc")
    with pytest.raises(BaselineError):
        store.save(from_stored(record("r2", test_id="s.py::b")))
    assert snapshot(tmp_path) == before


def test_baselines_saved_under_the_old_names_keep_matching_and_move_on_the_next_save(tmp_path):
    old = tmp_path / "cpu-1" / legacy_baseline_filename("s.py::t[a/b]", "abc")
    old.parent.mkdir(parents=True)
    BaselineStore(tmp_path / "scratch").save(from_stored(record("r0", test_id="s.py::t[a/b]")))
    [made] = (tmp_path / "scratch" / "cpu-1").glob("*.json")
    old.write_bytes(made.read_bytes())  # what an older pytest-inferlab wrote
    store = BaselineStore(tmp_path)
    assert store.load("cpu-1", "s.py::t[a/b]", "abc").path == old
    assert store.load("cpu-1", "s.py::t[a_b]", "abc") is None  # same old slug, another test: not its baseline
    saved = store.save(from_stored(record("r1", test_id="s.py::t[a/b]")))
    assert saved.path.name == baseline_filename("s.py::t[a/b]", "abc") and not old.exists()
    assert history(store, "s.py::t[a/b]") == ["r0", "r1"]


def test_hostile_ids_stay_inside_their_folders(tmp_path):
    hostile = "s.py::t[../../etc/passwd\x00\n]"
    path = BaselineStore(tmp_path).save(from_stored(record("r1", test_id=hostile))).path
    assert path.parent == tmp_path / "cpu-1"
    rec = record("r1", test_id=hostile)

    class Named:  # what RecordStore.write reads of a Record
        test_id, spec_id = hostile, "abc"

        def to_json(self):
            return rec

    written = RecordStore(tmp_path / "results", "run1").write(Named())
    assert written.parent == tmp_path / "results" / "runs" / "run1"


# ---- only valid measurements enter a history ----------------------------------------------------

def test_invalid_records_are_left_out_and_named(tmp_path, capsys):
    run = write_run(tmp_path / "run", record("r1", test_id="s.py::a"),
                    record("r1", test_id="s.py::b", invalid="measured beside other pytest-xdist workers"))
    assert main(["save-baseline", str(run), "--baselines", str(tmp_path / "baselines")]) == 0
    out = capsys.readouterr().out
    assert "baselines: 1 saved, 0 already in their history, 1 left out" in out
    assert ("left out s.py::b: invalid measurement (measured beside other pytest-xdist workers)") in out
    assert BaselineStore(tmp_path / "baselines").load("cpu-1", "s.py::b", "abc") is None


def test_records_written_before_conditions_invalid_are_judged_by_their_verdicts(tmp_path):
    old = {**record("r1"), "conditions": {}, "verdicts": [
        {"metric": "tpot_ms", "outcome": "invalid", "reason": "other processes used 40% of the CPU"}]}
    unmeasured = {**record("r1", test_id="s.py::u"), "conditions": {}, "verdicts": [
        {"metric": "ttft_ms", "outcome": "invalid", "reason": "not measured in this run"}]}
    report = save_valid(BaselineStore(tmp_path), [from_stored(old), from_stored(unmeasured)])
    assert report.left_out == (("s.py::t", "invalid measurement (other processes used 40% of the CPU)"),)
    assert [s.test_id for s in report.saved] == ["s.py::u"]


@pytest.mark.slow  # 15-26 s of pytester runs: the default run keeps under 10 minutes
def test_xdist_cases_are_not_saved_as_baselines(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess(*ARGS, "-n", "2", "--inferlab-save-baseline")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["baselines: 0 saved, 0 already in their history, 1 left out",
                                 "*left out test_suite.py::test_latency: invalid measurement (*)"])
    assert not list((pytester.path / "baselines").rglob("*.json"))


# ---- a measured case keeps its record --------------------------------------------------------

@pytest.mark.slow
def test_an_unreadable_baseline_fails_the_case_in_one_line_and_keeps_its_record_and_stale_temps_go(pytester):
    pytester.makepyfile(test_suite=SUITE)
    assert pytester.runpytest_inprocess(*ARGS, "--inferlab-save-baseline", "--inferlab-max-interference=0.99").ret == 0
    [path] = (pytester.path / "baselines").glob("*/*.json")
    path.write_text('{"schema_version": 1, "metr')
    stale = [pytester.path / ".inferlab" / "runs" / "old" / ".tmp-999999999-x.json", path.with_name(".tmp-999999999-y.json")]
    for temp in stale:  # what writers killed mid-write left: the next run removes them
        temp.parent.mkdir(parents=True, exist_ok=True)
        temp.write_text("{")
    result = pytester.runpytest_inprocess(*ARGS)
    assert not any(temp.exists() for temp in stale)
    assert result.ret == 1
    result.stdout.fnmatch_lines([f"*baseline {path} is unreadable (*); fix it or restore it from git (it is never "
                                 "treated as missing nor overwritten) (this case's record is kept: *.json)"])
    result.stdout.no_fnmatch_line("*Traceback*")
    newest = max(run for run in (pytester.path / ".inferlab" / "runs").iterdir() if run.name != "old")
    [kept] = record_files(newest)
    data = json.loads(kept.read_text())
    assert "tpot_ms" in data["measurements"] and "unreadable" in data["baseline"]["error"]
    assert path.read_text() == '{"schema_version": 1, "metr'  # never overwritten


# ---- temporary files and modes -------------------------------------------------------------------

def test_temporary_files_are_never_records_and_stale_ones_are_removed(tmp_path, capsys):
    run = write_run(tmp_path / "run", record("r1"))
    (run / ".tmp-999999999-whole.json").write_text(json.dumps(record("r1")))  # a writer killed before its rename
    (run / ".tmp-999999999-cut.json").write_text('{"schema_version": 1, "run')
    live = run / f".tmp-{os.getpid()}-live.json"  # a writer still at work (this process)
    live.write_text("{")
    assert record_files(run) == [run / "case0.json"]
    assert main(["save-baseline", str(run), "--baselines", str(tmp_path / "baselines")]) == 0
    assert "1 saved" in capsys.readouterr().out
    assert history(BaselineStore(tmp_path / "baselines"), "s.py::t") == ["r1"]
    assert sorted(p.name for p in run.iterdir()) == [live.name, "case0.json"]
    assert remove_stale_temps(run) == []


def test_files_get_the_modes_the_umask_gives(tmp_path):
    previous = os.umask(0o022)
    try:
        done = subprocess.run([sys.executable, "-c", (
            "import sys, pathlib; from pytest_inferlab.ground.jsonio import write_json_new, write_json_replace;"
            "root = pathlib.Path(sys.argv[1]); write_json_new(root / 'new.json', {}); "
            "write_json_replace(root / 'replaced.json', {})"), str(tmp_path)], capture_output=True, text=True)
    finally:
        os.umask(previous)
    assert done.returncode == 0, done.stderr
    for name in ("new.json", "replaced.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert write_json_new and write_json_replace  # the functions the subprocess used


# ---- what already behaved stays so ------------------------------------------------------------

def test_a_future_schema_baseline_is_named_and_never_overwritten(tmp_path):
    store = BaselineStore(tmp_path)
    path = store.save(from_stored(record("r1"))).path
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": 9}))
    before = snapshot(tmp_path)
    with pytest.raises(BaselineError, match=f"baseline {path} has schema_version 9; this pytest-inferlab reads 1"):
        store.save(from_stored(record("r2")))
    assert snapshot(tmp_path) == before


def test_bad_option_values_and_an_unreachable_server_are_usage_errors(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess("--inferlab-rounds=many")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--inferlab-rounds*many*"])
    result = pytester.runpytest_inprocess(*ARGS, "--inferlab-server-url=http://127.0.0.1:9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*http://127.0.0.1:9*"])


# ---- errors name the thing and the remedy, in one line, before any case -------------------------

PARAM_SUITE = """
import pytest

@pytest.mark.parametrize("{name}", [{value!r}], indirect=True)
def test_case({fixtures}):
    pass
"""


@pytest.mark.parametrize("name, fixture, value, message", [
    ("model", "model", "dummy:tinny", "parameter model='dummy:tinny': unknown dummy preset 'tinny'. Did you mean 'tiny'?"),
    ("model", "model", "nosuch/org-model", "parameter model='nosuch/org-model': hub model 'nosuch/org-model' is not in "
                                            "the local Hugging Face cache"),
    ("workload", "model", "short-chta", "parameter workload='short-chta': unknown workloads 'short-chta'. Did you mean "
                                        "'short-chat'"),
    ("load", "model", "closd:4", "parameter load='closd:4': "),
    ("quantization", "quantized_model", "int9", "parameter quantization='int9': unknown quantization methods 'int9'."),
    ("kv_cache", "kv_model", "fp9", "parameter kv_cache='fp9': unknown KV-cache configurations 'fp9'. Did you mean "
                                    "'fp8'?"),
    ("batching", "model", "continous", "parameter batching='continous': unknown "),
    ("speculative", "speculative_model", "prompt-lookp", "parameter speculative='prompt-lookp': unknown "),
])
def test_unknown_names_of_every_axis_are_usage_errors_at_collection(pytester, name, fixture, value, message):
    fixtures = ", ".join(dict.fromkeys(["lab", fixture, name, "workload"]))
    pytester.makepyfile(test_suite=PARAM_SUITE.format(name=name, fixtures=fixtures, value=value))
    result = pytester.runpytest_inprocess(*ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    [line] = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert line.startswith(f"ERROR: test_suite.py::test_case[{value}]: {message}"), line
    assert "--inferlab-model" not in line and "Traceback" not in result.stderr.str()


def make_folder(path, config_text):
    path.mkdir()
    (path / "config.json").write_text(config_text)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda root: "dummy:huge", "unknown dummy preset 'huge'. Known: tiny, "),
    (lambda root: "nosuch/org-model", "hub model 'nosuch/org-model' is not in the local Hugging Face cache"),
    (lambda root: str(make_folder(root / "broken", '{"model_type": "llama", ')),
     "/broken/config.json is not valid JSON (Expecting property name enclosed in double quotes"),
    (lambda root: str(make_folder(root / "empty", '{}')), "/empty/config.json names no model_type or architectures"),
])
def test_a_model_that_cannot_be_had_is_one_usage_error_before_any_case(pytester, make, message):
    pytester.makepyfile(test_suite=SUITE)
    model = make(pytester.path)
    result = pytester.runpytest_inprocess(*ARGS[1:], f"--inferlab-model={model}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.stderr.lines if line]
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: --inferlab-model={model}: ") and message in lines[0], lines
    assert not (pytester.path / ".inferlab").exists()  # no case ran


def test_a_truncated_or_foreign_gguf_file_is_named_with_what_is_wrong(pytester):
    from pytest_inferlab.engines.sources import embedded_gguf_path

    whole = embedded_gguf_path("smollm2-135m").read_bytes()
    (pytester.path / "cut.gguf").write_bytes(whole[: len(whole) // 2])
    (pytester.path / "text.gguf").write_text("not a model\n")
    pytester.makepyfile(test_suite=SUITE)
    cut = pytester.path / "cut.gguf"
    for path, message in ((cut, f"ERROR: --inferlab-model={cut}: GGUF file {cut} is truncated or corrupt: its header does "
                                "not parse"),
                          (pytester.path / "text.gguf", f"ERROR: --inferlab-model={pytester.path / 'text.gguf'}: "
                                                        f"{pytester.path / 'text.gguf'} is not a GGUF file (it "
                                                        "starts with b'not ', not b'GGUF')")):
        result = pytester.runpytest_inprocess(*ARGS[1:], f"--inferlab-model={path}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        lines = [line for line in result.stderr.lines if line]
        assert len(lines) == 1 and lines[0].startswith(message), result.stdout.str() + result.stderr.str()


def test_a_model_that_fails_to_load_fails_every_case_in_one_line_and_is_loaded_once(pytester):
    folder = make_folder(pytester.path / "garbage", json.dumps({"model_type": "llama", "architectures": ["X"]}))
    (folder / "model.safetensors").write_bytes(b"\0" * 64)  # passes the cheap check, fails to load
    pytester.makepyfile(test_suite=SUITE.replace("def test_latency", "@pytest.mark.parametrize('n', [1, 2])\n"
                                                 "def test_latency").replace("(lab, model, workload)",
                                                                             "(lab, model, workload, n)"))
    result = pytester.runpytest_inprocess(*ARGS[1:], f"--inferlab-model={folder}", "-rE")
    assert result.ret == 1
    out = result.stdout.str()
    assert out.count("[inferlab] loading") == 1, out  # remembered, not retried for the second case
    assert sum(line.startswith("ERROR test_suite.py::test_latency") for line in result.stdout.lines) == 2
    messages = [line for line in result.stdout.lines if line.startswith(f"model '{folder}' ({folder}) could not be "
                                                                         "loaded: ")]
    assert len(messages) == 2 and messages[0] == messages[1], out
    assert "Traceback" not in out and "During handling" not in out and "direct cause" not in out


KILLED_SAVER = """
import sys
from pathlib import Path
from pytest_inferlab.record.baselines import BaselineStore
from pytest_inferlab.record.record import Record
store = BaselineStore(Path(sys.argv[1]))
rec = {"schema_version": 1, "run_id": "r", "machine_id": "m", "test_id": "t", "spec_id": "s", "spec": {},
       "environment": {},
       "measurements": {f"metric_{i}": {"unit": "ms", "value": 1.0, "samples": [1.0] * 2000} for i in range(20)}}
print("ready", flush=True)
for i in range(10**9):
    store.save(Record.from_json({**rec, "run_id": f"r{i}"}, "x"))
"""


def test_ctrl_c_while_saving_leaves_only_whole_files(tmp_path):
    import signal
    import time

    # A shell's background job (and a pytest-xdist worker started from one) ignores SIGINT, and a child
    # inherits that: the saver restores the default, so Python turns SIGINT into KeyboardInterrupt again.
    with subprocess.Popen([sys.executable, "-c", KILLED_SAVER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                          stderr=subprocess.DEVNULL,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as proc:
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:  # never wait forever on the way out (Popen's exit waits)
                proc.kill()
    [path] = (tmp_path / "m").glob("t-*-s.json")
    data = json.loads(path.read_text())  # whole: the old file or the new one
    assert len(data["metrics"]) == 20 and len({h["run_id"] for h in data["metrics"]["metric_0"]["history"]}) == \
        len(data["metrics"]["metric_0"]["history"])  # and no run twice
    remove_stale_temps(tmp_path)
    assert not list(tmp_path.rglob(".tmp-*"))


def _save_many(root, worker, count):
    store = BaselineStore(root)
    for i in range(count):
        store.save(from_stored(record(f"w{worker}-{i}", test_id=f"s.py::t{i % 2}")))


def test_concurrent_savers_lose_nothing_and_double_nothing(tmp_path, run_in_processes):
    run_in_processes(_save_many, [(tmp_path, w, 6) for w in range(3)] * 2)  # each worker's runs saved twice
    store = BaselineStore(tmp_path)
    for case in (0, 1):
        runs = history(store, f"s.py::t{case}")
        assert sorted(runs) == sorted(f"w{w}-{i}" for w in range(3) for i in range(case, 6, 2)), runs


def test_a_folder_asking_for_remote_code_is_refused_without_running_it(pytester):
    folder = pytester.path / "remote"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evil", "auto_map": {"AutoConfig": "configuration_evil.EvilConfig",
                                           "AutoModelForCausalLM": "modeling_evil.EvilModel"}}))
    marker = pytester.path / "ran"
    for module in ("configuration_evil.py", "modeling_evil.py"):
        (folder / module).write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess(*ARGS[1:], f"--inferlab-model={folder}", "-rE")
    assert result.ret == 1
    result.stdout.fnmatch_lines([f"model '{folder}' ({folder}) could not be loaded: *"])
    assert not marker.exists()
