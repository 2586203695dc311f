"""Your prompts and sizes from the command line: a suite of ten lines in a project of its own, run on
a prompt file of your own; the command line beats the suite's sizes; bad prompts stop the run before
any case, naming the option, the file and the line."""

import json

EXIT_USAGE = 4

SUITE = '''
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 3, "output_tokens": 6}

@pytest.mark.inferlab(rounds=1, warmup=0)
def test_mine(lab, model, workload):
    lab.measure(model, workload)
'''


def test_a_prompt_file_and_sizes_from_the_command_line_beat_the_suite(pytester):
    prompts = pytester.path / "my-prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "Name a colour."}) + "\n"
                       + json.dumps({"conversations": [{"from": "human", "value": "Count to three."}]}) + "\n")
    pytester.makepyfile(test_mine=SUITE)
    result = pytester.runpytest_inprocess("--inferlab-model=dummy:tiny", "--inferlab-prompts=my-prompts.jsonl",
                                           "--inferlab-requests=2", "--inferlab-results=res", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    record = json.loads(next((pytester.path / "res" / "runs").glob("*/*.json")).read_text())
    workload = record["spec"]["workload"]
    assert workload["prompts"] == f"file:{prompts.resolve()}"
    assert workload["count"] == 2 and workload["output_tokens"] == 6  # the command line's count, the suite's length
    assert record["measurements"]["output_tok_per_s"]["value"] > 0


def test_a_bad_prompt_line_stops_the_run_before_any_case(pytester):
    (pytester.path / "bad.jsonl").write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"q": "?"}) + "\n")
    pytester.makepyfile(test_mine=SUITE)
    result = pytester.runpytest_inprocess("--inferlab-model=dummy:tiny", "--inferlab-prompts=bad.jsonl")
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(["*--inferlab-prompts=bad.jsonl: *bad.jsonl:2: no prompt in it*"])


def test_a_prompt_beyond_the_context_is_a_usage_error_naming_its_line(pytester):
    long = " ".join(["word"] * 9000)  # beyond dummy:tiny's context of 8192
    (pytester.path / "long.jsonl").write_text(json.dumps({"text": "short"}) + "\n" + json.dumps({"text": long}) + "\n")
    pytester.makepyfile(test_mine=SUITE)
    result = pytester.runpytest_inprocess("--inferlab-model=dummy:tiny", "--inferlab-prompts=long.jsonl",
                                           "--inferlab-output-tokens=4")
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(["*--inferlab-prompts: *long.jsonl:2: a prompt of * tokens and 4 new tokens is beyond*"])
