"""Options, ini keys and usage errors, as a user meets them on the command line."""

import subprocess
import sys

import pytest

EXIT_USAGE = 4


def test_plugin_loads_without_torch():
    code = "import pytest_inferlab.plugin, sys; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_help_lists_the_inferlab_group(pytester):
    result = pytester.runpytest_inprocess("--help")
    result.stdout.fnmatch_lines([
        "*LLM inference measurements (pytest-inferlab)*",
        "*--inferlab-gpu=INFERLAB_GPU*",
        "*--inferlab-model=INFERLAB_MODEL*",
        "*--inferlab-threads=INFERLAB_THREADS*",
        "*--inferlab-rounds=INFERLAB_ROUNDS*",
        "*--inferlab-warmup=INFERLAB_WARMUP*",
        "*--inferlab-seed=INFERLAB_SEED*",
        "*--inferlab-results=INFERLAB_RESULTS*",
        "*--inferlab-save-baseline, --no-inferlab-save-baseline*",
        "*inferlab_rounds (string):*",
    ])
    result.stdout.no_fnmatch_line("*--inferlab-ab-turns*")  # the lab's own, for its child processes
    result.stdout.no_fnmatch_line("*inferlab_ab_side*")


def test_a_switch_the_ini_file_turns_on_the_command_line_turns_off(pytester):
    from pytest_inferlab.plugin.options import read_settings

    pytester.makeini("[pytest]\ninferlab_save_baseline = true\ninferlab_fresh_process = true\n")
    assert read_settings(pytester.parseconfig()).save_baseline is True
    settings = read_settings(pytester.parseconfig("--no-inferlab-save-baseline"))
    assert settings.save_baseline is False and settings.fresh_process is True and "save_baseline" in settings.explicit


@pytest.mark.parametrize(
    "arg, expected",
    [
        ("--inferlab-rounds=0", "*argument --inferlab-rounds: 0 is out of range; expected an integer >= 1*"),
        ("--inferlab-warmup=-1", "*argument --inferlab-warmup: -1 is out of range; expected an integer >= 0*"),
        ("--inferlab-threads=two", "*argument --inferlab-threads: 'two' is not an integer; expected an integer >= 1*"),
        ("--inferlab-gpu=x", "*argument --inferlab-gpu: 'x' is not an integer; expected a CUDA device index >= 0*"),
        ("--inferlab-seed=-3", "*argument --inferlab-seed: -3 is out of range; expected an integer seed >= 0*"),
    ],
)
def test_bad_option_values_are_usage_errors(pytester, arg, expected):
    result = pytester.runpytest_inprocess(arg)
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines([expected])


def test_bad_ini_value_names_the_ini_key(pytester):
    pytester.makeini("[pytest]\ninferlab_rounds = zero\n")
    result = pytester.runpytest_inprocess()
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(["*ini option inferlab_rounds = 'zero': 'zero' is not an integer*"])


def test_ini_values_apply_and_the_command_line_wins(pytester):
    pytester.makeini("[pytest]\ninferlab_rounds = 2\ninferlab_warmup = 0\ninferlab_model = dummy:tiny\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_inprocess("--inferlab-warmup=3")
    result.stdout.fnmatch_lines(["inferlab: model=dummy:tiny device=cpu rounds=2 warmup=3 *"])
    assert result.ret == 0


def test_gpu_option_without_a_gpu_is_a_usage_error_not_a_cpu_fallback(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_inprocess("--inferlab-gpu=0")
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(["*--inferlab-gpu=0: no CUDA device is visible*Run without --inferlab-gpu*"])
    result.stdout.no_fnmatch_line("*passed*")


def test_explicit_unknown_model_is_a_usage_error_before_any_case(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_inprocess("--inferlab-model=./no/such/model")
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(["ERROR: --inferlab-model=./no/such/model: *no/such/model does not exist"])


def test_plugin_can_be_disabled(pytester):
    pytester.makepyfile("def test_uses_lab(lab): pass")
    result = pytester.runpytest_inprocess("-p", "no:inferlab")
    result.stdout.fnmatch_lines(["*fixture 'lab' not found*"])
    assert result.ret == 1


def test_tolerance_for_an_unknown_metric_is_a_usage_error(pytester):
    pytester.makeini("[pytest]\ninferlab_tolerance = tpot=0.1\n")
    result = pytester.runpytest_inprocess()
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(["*inferlab_tolerance: tolerance for unknown metric(s) [[]'tpot'[]]; known: *tpot_ms*"])


def test_malformed_tolerance_option_names_the_form(pytester):
    result = pytester.runpytest_inprocess("--inferlab-tolerance=tpot_ms")
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(["*argument --inferlab-tolerance: tolerances: 'tpot_ms' is not METRIC=TOLERANCE*"])
