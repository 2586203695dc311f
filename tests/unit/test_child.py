"""Preparation in a child process (ground/child.py): progress relayed, results returned, failures named."""

import os
from pathlib import Path

import pytest

from pytest_inferlab.ground.child import ChildError, Step, run_child
from pytest_inferlab.ground.progress import StepProgress

HERE = str(Path(__file__).resolve().parent)
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")]))}


def test_a_child_returns_its_result_and_relays_every_step():
    steps = []
    found = run_child("child_targets:count", {"n": 3}, what="counting", progress=steps.append, env=ENV)
    assert found["twice"] == 6 and found["pid"] != os.getpid()
    assert steps == [Step(0, 3, "step"), Step(1, 3, "step"), Step(2, 3, "step"), Step(3, 3, "step")]


def test_an_exception_in_the_child_is_an_error_with_its_traceback():
    with pytest.raises(ChildError, match=r"(?s)checking: ValueError: bad setting 'x'.*child_targets.py"):
        run_child("child_targets:fail", {"setting": "x"}, what="checking", env=ENV)


def test_a_child_that_crashes_is_named_with_its_signal():
    steps = []
    with pytest.raises(ChildError, match=r"crashing: the child process died \(signal 11\)"):
        run_child("child_targets:crash", {}, what="crashing", progress=steps.append, env=ENV)
    assert steps == [Step(1, 3, "step")]


def test_a_child_past_its_time_is_stopped():
    with pytest.raises(ChildError, match=r"waiting: still running after 2 s, stopped"):
        run_child("child_targets:hang", {}, what="waiting", timeout_s=2, env=ENV)


def test_progress_lines_say_time_left_per_phase_and_never_repeat():
    now = [0.0]
    lines = []
    progress = StepProgress("gptq of m", lines.append, clock=lambda: now[0], every_s=0)
    for t, step in [(0, Step(0, 30, "layer")), (0, Step(0, 30, "layer")), (10, Step(5, 30, "layer")),
                    (20, Step(30, 30, "layer")), (20, Step(0, 100, "tensor")), (22, Step(50, 100, "tensor"))]:
        now[0] = t
        progress(step)
    assert lines == ["gptq of m: layer 0/30, estimating time left", "gptq of m: layer 5/30, ~50 s left",
                     "gptq of m: layer 30/30, done", "gptq of m: tensor 0/100, estimating time left",
                     "gptq of m: tensor 50/100, ~2 s left"]


def test_progress_lines_are_at_most_one_a_second_within_a_phase():
    now = [0.0]
    lines = []
    progress = StepProgress("rung", lines.append, clock=lambda: now[0])
    for t, done in [(0.0, 0), (0.2, 1), (0.5, 2), (1.1, 3), (1.3, 4), (1.4, 10)]:
        now[0] = t
        progress(Step(done, 10, "tensor"))
    assert [line.split(": ")[1].split(",")[0] for line in lines] == ["tensor 0/10", "tensor 3/10", "tensor 10/10"]
