"""inferlab tune: the study file, pruning, the accuracy floor, the Optuna loop (resume, failures,
early stops, several workers on one storage) and the answer. Trials here are a table of known figures
(``FakeMeasure``); tests/plugin/test_tune_real.py runs real trials on the embedded model."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from pathlib import Path

import pytest

pytest.importorskip("optuna")

from pytest_inferlab.device import CPU
from pytest_inferlab.engines.sources import resolve_model
from pytest_inferlab.tune.answer import REVERSED, TIE, Confirmation, answer, reproduction
from pytest_inferlab.tune.floor import (BELOW, NO_DATA, NOT_SHOWN, SHOWN, FloorCheck, by_definition, check_agreement,
                                        check_divergence, check_task, proportion_bounds)
from pytest_inferlab.tune.prune import impossible, split
from pytest_inferlab.tune.run import run_tune
from pytest_inferlab.tune.space import Config, Floor, SpaceError, load_space, parse_space
from pytest_inferlab.tune.study import TuneRequest, open_study, results_of, search
from pytest_inferlab.tune.trial import Ratio, TrialResult

STUDY = """
[study]
name = "t"
trials = 4
[axes]
quantization = ["fp32", "int8-weight", "gguf-q8_0", "gguf-q4_0"]
drafting = ["none", "prompt-lookup"]
[slo]
tpot_ms = { p50 = 100 }
[floor]
top1_agreement = { min = 0.9 }
"""

# Known figures per configuration label: (speed ratio, tpot p50 ms, top-1 agreement)
FIGURES = {
    "fp32": (1.0, 60.0, 1.0), "fp32 + prompt-lookup": (0.9, 70.0, 1.0),
    "int8-weight": (1.3, 50.0, 0.97), "int8-weight + prompt-lookup": (1.1, 55.0, 0.97),
    "gguf-q8_0": (3.0, 20.0, 0.96), "gguf-q8_0 + prompt-lookup": (2.0, 30.0, 0.96),
    "gguf-q4_0": (4.0, 15.0, 0.80), "gguf-q4_0 + prompt-lookup": (2.5, 25.0, 0.80),
}


def agreement(floor: Floor, top1: float) -> FloorCheck:
    """The check a trial of known top-1 agreement decides (the reference's own by definition)."""
    return by_definition(floor, "the reference itself") if top1 == 1 else check_agreement(floor, top1, 1000)


def write_study(tmp_path: Path, text: str = STUDY) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


class FakeMeasure:
    """A trial runner with known figures; it logs every configuration it measures to ``log``."""

    def __init__(self, log: Path, fail: str | None = None, interrupt_after: int | None = None) -> None:
        self.log, self.fail, self.interrupt_after = log, fail, interrupt_after

    def __call__(self, plan, space, folder, pytest_args, timeout_s, reference=None) -> TrialResult:
        label = plan.config.label
        done = self.log.read_text().splitlines() if self.log.exists() else []
        if self.interrupt_after is not None and len(done) >= self.interrupt_after:
            raise KeyboardInterrupt
        with self.log.open("a") as out:
            out.write(label + "\n")
        if label == self.fail:
            return TrialResult(plan.config, failed="exit status 1: the engine crashed")
        if plan.against is not None:  # the confirmation: pick over runner-up
            mine, theirs = FIGURES[label][0], FIGURES[plan.against.label][0]
            return TrialResult(plan.config, speed=Ratio(mine / theirs, mine / theirs * 0.95, mine / theirs * 1.05))
        speed, tpot, top1 = FIGURES[label]
        violated = [b for b in plan.bounds if tpot > b.limit * 1.05]  # what lab.measure(bounds=...) decides
        stopped = (f"decided: clearly violates {violated[0].label}: [{tpot * 0.97:.4g}, {tpot * 1.03:.4g}]" if violated
                   else "decided: below the incumbent's 9x" if plan.incumbent and speed * 1.05 < plan.incumbent
                   else "precise: +-4% <= +-5%")
        floors = tuple(agreement(f, top1) for f in space.floors)
        return TrialResult(plan.config, None, Ratio(speed, speed * 0.96, speed * 1.04), speed,
                           {b.label: tpot for b in space.slo}, floors, 1e8 / speed, {"used": 3, "stopped": stopped},
                           machine_id="machine-a")


def request_for(tmp_path: Path, study: Path, **kwargs) -> TuneRequest:
    space = load_space(study)
    return TuneRequest(space, tmp_path / "results" / "tune" / space.name, **kwargs)


# ---- the study file ---------------------------------------------------------------------------


def test_a_study_file_reads_into_axes_limits_and_configurations(tmp_path):
    space = load_space(write_study(tmp_path))
    assert [axis.name for axis in space.axes] == ["quantization", "drafting"]
    assert len(list(space.configurations())) == 8
    assert space.reference == Config()  # the first value of every axis: fp32, no drafting
    assert [b.label for b in space.slo] == ["tpot_ms p50 <= 100"]
    assert space.floors == (Floor("top1_agreement", 0.9, 0.95),)
    assert space.maximize


@pytest.mark.parametrize("text, named", [
    ("[axes]\nquantisation = ['fp32']", "quantisation"),
    ("[axes]\nquantization = ['fp23']", "fp23"),
    ("[axes]\nquantization = []", "non-empty list"),
    ("[axes]\ndrafting = [{ num_tokens = 3 }]", "method"),
    ("[axes]\nquantization = ['fp32']\n[slo]\ntpot_ms = { p95 = 100 }", "p95"),
    ("[axes]\nquantization = ['fp32']\n[slo]\ntpot = { p50 = 100 }", "tpot"),
    ("[axes]\nquantization = ['fp32']\n[floor]\ntop1_agreement = { min = 1.5 }", "min = 1.5"),
    ("[axes]\nquantization = ['fp32']\n[study]\ntrials = 0", "trials=0"),
    ("[axes]\nquantization = ['fp32']\n[study]\nobjective = 'speed'", "objective='speed'"),
    ("[axes]\nquantization = ['fp32']\n[studdy]\nname = 'x'", "studdy"),
])
def test_a_bad_study_file_is_an_error_naming_the_file_and_the_key(tmp_path, text, named):
    path = write_study(tmp_path, text)
    with pytest.raises(SpaceError) as caught:
        load_space(path)
    assert str(path) in str(caught.value) and named in str(caught.value)


def test_settings_of_a_method_are_a_table(tmp_path):
    space = parse_space({"axes": {"drafting": ["none", {"method": "prompt-lookup", "num_tokens": 4}]}}, "x.toml")
    assert [axis.labels for axis in space.axes] == [["none", "prompt-lookup-num_tokens=4"]]
    drafted = list(space.configurations())[1]
    assert dict(drafted.drafting.settings) == {"num_tokens": 4}
    assert Config.from_dict(json.loads(json.dumps(drafted.to_dict()))) == drafted


def test_a_batch_size_axis_is_sizes_or_a_range_pruned_past_the_workload_and_under_drafting():
    from pytest_inferlab.tune.study import screen

    space = load_space_text("""
[study.workload_overrides]
count = 4
[axes]
quantization = ["fp32", "gguf-q8_0"]
drafting = ["none", "prompt-lookup"]
batch_size = [1, { low = 2, high = 8 }]
""")
    feasible, pruned = split(space, CPU, resolve_model("smollm2-135m"))
    reasons = {p.config.label: p.reason for p in pruned}
    assert "the batch would hold 4" in reasons["fp32 + batch 5"]
    assert "one request at a time" in reasons["fp32 + prompt-lookup + batch 2"]
    assert {c.batch_size for c in feasible} == {1, 2, 3, 4}
    assert [c.label for c in screen(space, feasible)] == ["gguf-q8_0", "fp32 + prompt-lookup", "fp32 + batch 3"]
    batched = next(c for c in feasible if c.batch_size == 4)
    assert Config.from_dict(json.loads(json.dumps(batched.to_dict()))) == batched
    assert "batch_size" not in Config().to_dict()  # a study stored before this axis keeps its keys
    assert "batch_size=4, reference_batch_size=1)" in reproduction(batched, space)[-1]
    with pytest.raises(SpaceError, match="batch_size: 0: a batch size is an integer >= 1"):
        load_space_text("[axes]\nbatch_size = [1, 0]")


def test_an_objective_no_trial_could_measure_is_refused_before_the_first(tmp_path):
    study = write_study(tmp_path, STUDY.replace('name = "t"', 'name = "t"\nobjective = "goodput_req_per_s"'))
    lines = []
    code, _ = run_tune(request_for(tmp_path, study), say=lines.append, measure=FakeMeasure(tmp_path / "log.txt"))
    assert code == 2 and not (tmp_path / "log.txt").exists()
    assert "per-request SLO" in lines[-1] and "--inferlab-slo=" in lines[-1] and str(study) in lines[-1]
    floored = write_study(tmp_path, STUDY.replace("top1_agreement = { min = 0.9 }", "no_such_task.acc = { margin = 0.1 }"))
    code, _ = run_tune(request_for(tmp_path, floored), say=lines.append, measure=FakeMeasure(tmp_path / "log.txt"))
    assert code == 2 and not (tmp_path / "log.txt").exists()
    assert "[floor]" in lines[-1] and ("no_such_task" in lines[-1] or "lm-eval is not installed" in lines[-1])


# ---- pruning ------------------------------------------------------------------------------------


def test_impossible_combinations_are_pruned_with_their_reasons():
    space = parse_space({"axes": {"quantization": ["fp32", "int8-weight", "gguf-q8_0"],
                                  "kv_cache": ["dynamic", "fp8", "paged"],
                                  "drafting": ["none", "prompt-lookup", "early-exit"]}}, "x.toml")
    feasible, pruned = split(space, CPU, resolve_model("smollm2-135m"))
    reasons = {p.config.label: p.reason for p in pruned}
    assert "llama.cpp keeps its own" in reasons["gguf-q8_0 + kv fp8"]
    assert "llama.cpp runs prompt-lookup and draft only" in reasons["gguf-q8_0 + early-exit"]
    assert "not with a quantized one" in reasons["int8-weight + kv fp8"]
    assert "continuous batching" in reasons["fp32 + kv paged"]
    assert "fp32 + kv fp8 + prompt-lookup" not in reasons
    assert len(feasible) + len(pruned) == 27
    assert Config() in feasible


def test_a_gguf_rung_on_a_model_without_a_gguf_file_is_pruned():
    config = parse_space({"axes": {"quantization": ["gguf-q8_0"]}}, "x.toml").reference
    assert "GGUF file" in impossible(config, CPU, resolve_model("dummy:tiny-llama"))


# ---- the accuracy floor -------------------------------------------------------------------------


def test_the_floor_is_a_one_sided_clopper_pearson_bound():
    from scipy import stats

    lower, upper = proportion_bounds(95, 100, 0.95)
    assert stats.binom.sf(94, 100, lower) == pytest.approx(0.05, abs=1e-6)  # P(X >= 95 | lower) = alpha
    assert stats.binom.cdf(95, 100, upper) == pytest.approx(0.05, abs=1e-6)
    floor = Floor("top1_agreement", 0.9)
    assert check_agreement(floor, 0.95, 1000).outcome == SHOWN
    assert check_agreement(floor, 0.95, 40).outcome == NOT_SHOWN  # no worse, maybe; not shown: it does not pass
    assert not check_agreement(floor, 0.95, 40).passed
    assert check_agreement(floor, 0.80, 1000).outcome == BELOW
    assert check_agreement(floor, None, None).outcome == NO_DATA and not check_agreement(floor, None, None).passed
    assert by_definition(floor, "the reference itself").passed


def test_a_kld_floor_bounds_the_mean_from_above_with_its_batch_means_error():
    from pytest_inferlab.measure.fidelity import batch_means_se

    floor = Floor("kld_mean", 0.05)
    # 20 blocks of 64 positions: upper bound = mean + t(0.95, 19) x se = 0.03 + 1.729 x 0.005
    shown = check_divergence(floor, 0.03, 0.005, 20 * 64, 64)
    assert shown.outcome == SHOWN and shown.bound == pytest.approx(0.03 + 1.7291 * 0.005, abs=1e-4)
    assert check_divergence(floor, 0.045, 0.005, 20 * 64, 64).outcome == NOT_SHOWN
    assert check_divergence(floor, 0.08, 0.005, 20 * 64, 64).outcome == BELOW  # its lower bound is above the floor
    assert check_divergence(floor, 0.03, None, 20 * 64, 64).outcome == NO_DATA
    assert shown.shortfall < 0 < check_divergence(floor, 0.045, 0.005, 20 * 64, 64).shortfall
    # batch means: a block-constant series has the spread of its block means, not of its positions / sqrt(n)
    blocks = [0.0] * 64 + [1.0] * 64 + [0.0] * 64 + [1.0] * 64
    assert batch_means_se(blocks, 64) == pytest.approx(math.sqrt(1 / 3) / 2)
    assert batch_means_se(blocks[:100], 64) is None  # one block: no spread to judge


def test_a_task_floor_is_paired_item_by_item_and_honest_with_nothing_changed():
    floor = Floor("inferlab_mc.acc", 0.05)
    reference = [True] * 80 + [False] * 40
    same = check_task(floor, reference, reference)
    assert same.value == 0 and same.outcome == SHOWN
    assert same.bound == pytest.approx(-(1 - 0.025 ** (1 / 120)), abs=1e-9)  # 0 of 120 lost: a loss up to 3.0%
    assert not check_task(Floor("inferlab_mc.acc", 0.02), reference, reference).passed  # 120 items cannot show 2%
    lost_20 = [False] * 20 + reference[20:]  # 20 of 80 right answers lost: -17%
    assert check_task(floor, lost_20, reference).outcome == BELOW
    lost_12 = [False] * 12 + reference[12:]  # -10%, and yet not "below": the bound is conservative (Bonferroni)
    assert check_task(floor, lost_12, reference).outcome == NOT_SHOWN
    lost_3 = [False] * 3 + reference[3:]
    assert check_task(floor, lost_3, reference).outcome == NOT_SHOWN
    swapped = [False] * 3 + reference[3:80] + [True] * 3 + reference[83:]  # 3 lost, 3 gained: paired, not pooled
    assert check_task(floor, swapped, reference).value == 0
    assert check_task(floor, None, reference).outcome == NO_DATA
    assert "items" in same.words() and "inferlab_mc.acc" in same.words()


def test_floors_of_every_kind_read_from_the_study_file_and_back_from_storage(tmp_path):
    space = load_space(write_study(tmp_path, """
[axes]
quantization = ["fp32", "bf16"]
[floor]
top1_agreement = { min = 0.9 }
kld_mean = { max = 0.05, confidence = 0.9 }
inferlab_mc.acc = { margin = 0.05 }
"""))
    assert space.floors == (Floor("top1_agreement", 0.9), Floor("kld_mean", 0.05, 0.9), Floor("inferlab_mc.acc", 0.05))
    assert [f.kind for f in space.floors] == ["agreement", "divergence", "task"] and space.floors[2].task == "inferlab_mc"
    check = check_task(space.floors[2], [True, False] * 60, [True, False] * 60)
    assert FloorCheck.from_dict(json.loads(json.dumps(check.to_dict()))) == check
    old = {"metric": "top1_agreement", "minimum": 0.9, "confidence": 0.95, "outcome": "shown", "value": 0.97,
           "lower_bound": 0.96, "positions": 1400}  # as a study stored before this round wrote it
    assert FloorCheck.from_dict(old) == FloorCheck(Floor("top1_agreement", 0.9), SHOWN, 0.97, 0.96, 1400)


@pytest.mark.parametrize("text, named", [
    ("kld_mean = { min = 0.05 }", "max = 0.05"),
    ("top1_agreement = { max = 0.9 }", "min = 0.9"),
    ("mmlu = { margin = 0.05 }", "TASK.acc"),
    ('"inferlab_mc.acc" = { margin = 2 }', "margin = 2"),
])
def test_a_floor_given_the_wrong_bound_names_the_right_one(tmp_path, text, named):
    path = write_study(tmp_path, "[axes]\nquantization = ['fp32']\n[floor]\n" + text + "\n")
    with pytest.raises(SpaceError) as caught:
        load_space(path)
    assert str(path) in str(caught.value) and named in str(caught.value)


# ---- the search ---------------------------------------------------------------------------------


def test_the_search_measures_within_its_budget_and_picks_the_best_feasible(tmp_path):
    log = tmp_path / "measured.txt"
    code, found = run_tune(request_for(tmp_path, write_study(tmp_path)), say=lambda _: None, measure=FakeMeasure(log))
    measured = log.read_text().splitlines()
    assert code == 0
    assert len(measured[:-1]) == len(set(measured[:-1])) == 4  # 4 trials, none measured twice; then the confirmation
    best = max((label for label in measured[:-1] if FIGURES[label][2] >= 0.9), key=lambda label: FIGURES[label][0])
    assert found.pick.config.label == best
    assert all(r.feasible(found.space.slo) for r in found.front)
    saved = json.loads((tmp_path / "results/tune/t/tune.json").read_text())
    assert saved["pick"]["label"] == found.chosen.config.label and saved["reproduce"]
    assert "<svg" in (tmp_path / "results/tune/t/report.html").read_text()


def test_exhaustive_measures_every_feasible_configuration_once_in_order(tmp_path):
    log = tmp_path / "measured.txt"
    run_tune(request_for(tmp_path, write_study(tmp_path), exhaustive=True), confirm=False, say=lambda _: None,
             measure=FakeMeasure(log))
    assert log.read_text().splitlines() == list(FIGURES)
    study = open_study(request_for(tmp_path, write_study(tmp_path), exhaustive=True))
    found = answer(load_space(write_study(tmp_path)), sorted(results_of(study, load_space(write_study(tmp_path))).values(),
                                                              key=lambda x: x[0]), [])
    assert found.pick.config.label == "gguf-q8_0"  # q4_0 is faster but below the top-1 floor


def test_a_crashed_trial_is_recorded_failed_with_its_reason_and_the_study_goes_on(tmp_path):
    from optuna.trial import TrialState

    request = request_for(tmp_path, write_study(tmp_path), exhaustive=True)
    code, found = run_tune(request, confirm=False, say=lambda _: None,
                           measure=FakeMeasure(tmp_path / "log.txt", fail="int8-weight"))
    failed = [t for t in open_study(request).get_trials() if t.state == TrialState.FAIL]
    assert [t.user_attrs["label"] for t in failed] == ["int8-weight"]
    assert "the engine crashed" in failed[0].user_attrs["failed"]
    assert code == 0 and len(found.results) == 8


def test_an_interrupted_study_resumes_where_it_stopped(tmp_path):
    from optuna.trial import TrialState

    log = tmp_path / "measured.txt"
    request = request_for(tmp_path, write_study(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        run_tune(request, say=lambda _: None, measure=FakeMeasure(log, interrupt_after=2))
    interrupted = [t for t in open_study(request).get_trials() if t.state == TrialState.FAIL]
    assert len(interrupted) == 1 and interrupted[0].user_attrs["failed"] == "interrupted"
    first = log.read_text().splitlines()
    run_tune(request, say=lambda _: None, measure=FakeMeasure(log))
    again = log.read_text().splitlines()[len(first):]
    assert not set(again[:-1]) & set(first)  # nothing measured before is measured again
    assert len(set(first) | set(again[:-1])) == 4


def test_a_trial_left_running_by_a_dead_worker_is_told_fail(tmp_path):
    from optuna.trial import TrialState

    request = request_for(tmp_path, write_study(tmp_path))
    study = open_study(request)
    orphan = study.ask()
    orphan.set_user_attr("worker", f"{os.uname().nodename}:999999")  # no such process
    search(request, [], [], say=lambda _: None, measure=FakeMeasure(tmp_path / "log.txt"))
    assert study.get_trials()[0].state == TrialState.FAIL


def test_a_trial_below_the_incumbent_is_told_pruned_with_its_figure(tmp_path):
    from optuna.trial import TrialState

    request = request_for(tmp_path, write_study(tmp_path, STUDY.replace("trials = 4", "trials = 8")))
    run_tune(request, say=lambda _: None, measure=FakeMeasure(tmp_path / "log.txt"))
    cut = [t for t in open_study(request).get_trials() if t.state == TrialState.PRUNED and "result" in t.user_attrs]
    assert cut  # with every configuration measured, those below gguf-q8_0 measured after it were cut short
    for trial in cut:
        assert trial.intermediate_values  # what the sampler learns from
        assert "below the incumbent" in trial.user_attrs["result"]["rounds"]["stopped"]


def test_a_trial_that_clearly_violates_an_slo_is_stopped_and_told_pruned(tmp_path):
    from optuna.trial import TrialState

    request = request_for(tmp_path, write_study(tmp_path, STUDY.replace("p50 = 100", "p50 = 52")), exhaustive=True)
    code, found = run_tune(request, confirm=False, say=lambda _: None, measure=FakeMeasure(tmp_path / "log.txt"))
    trials = {t.user_attrs["label"]: t for t in open_study(request).get_trials()}
    for label, (_, tpot, _) in FIGURES.items():
        stopped = trials[label].user_attrs["result"]["rounds"]["stopped"]
        assert ("clearly violates tpot_ms p50 <= 52" in stopped) == (tpot > 52 * 1.05), label
        if tpot > 52 * 1.05:  # stopped early: pruned, with the figure it had (what the sampler learns from)
            assert trials[label].state == TrialState.PRUNED and trials[label].intermediate_values, label
    assert trials["gguf-q8_0"].state == TrialState.COMPLETE  # met: measured to precision, told its value
    assert found.pick.config.label == "gguf-q8_0"  # the SLO-violating ones are infeasible, not the best


def _worker(study_path: str, results: str, log: str) -> None:
    space = load_space(Path(study_path))
    request = TuneRequest(space, Path(results) / "tune" / space.name, exhaustive=True)
    run_tune(request, confirm=False, say=lambda _: None, measure=FakeMeasure(Path(log)))


def test_two_workers_on_one_storage_measure_nothing_twice_and_find_one_workers_front(tmp_path):
    study = write_study(tmp_path)
    log = tmp_path / "measured.txt"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_worker, args=(str(study), str(tmp_path / "results"), str(log))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert all(w.exitcode == 0 for w in workers)
    measured = log.read_text().splitlines()
    assert sorted(measured) == sorted(FIGURES)  # every configuration once, whichever worker took it
    alone = tmp_path / "alone"
    _worker(str(study), str(alone), str(tmp_path / "alone.txt"))
    space = load_space(study)

    def front(results: Path) -> list[str]:
        found = answer(space, list(results_of(open_study(TuneRequest(space, results / "tune" / "t", exhaustive=True)),
                                              space).values()), [])
        return sorted(r.config.label for r in found.front)

    assert front(tmp_path / "results") == front(alone)


def test_a_worker_on_another_machine_cannot_join_the_study(tmp_path):
    request = request_for(tmp_path, write_study(tmp_path), exhaustive=True)
    study = open_study(request)
    study.set_user_attr("machine_id", "machine-b")
    lines = []
    code, _ = run_tune(request, confirm=False, say=lines.append, measure=FakeMeasure(tmp_path / "log.txt"))
    assert code == 2
    assert "machine-a" in lines[-1] and "machine-b" in lines[-1]


def test_a_worker_of_another_machine_is_refused_before_its_first_trial(tmp_path):
    from pytest_inferlab.tune.run import this_machine

    mine = this_machine(CPU, ())
    assert mine == this_machine(CPU, ()) != this_machine(CPU, ("--inferlab-threads=64",))  # threads are the machine's
    request = request_for(tmp_path, write_study(tmp_path), exhaustive=True)
    run_tune(request, confirm=False, say=lambda _: None, measure=FakeMeasure(tmp_path / "first.txt"))
    assert open_study(request).user_attrs["worker_machine"] == mine  # the first worker named it
    elsewhere = request_for(tmp_path / "b", write_study(tmp_path), exhaustive=True)
    open_study(elsewhere).set_user_attr("worker_machine", "other-1234")  # a study another machine started
    lines = []
    code, _ = run_tune(elsewhere, confirm=False, say=lines.append, measure=FakeMeasure(tmp_path / "second.txt"))
    assert code == 2 and not (tmp_path / "second.txt").exists()  # refused before any trial: nothing measured
    assert "other-1234" in lines[-1] and mine in lines[-1]


# ---- the answer ---------------------------------------------------------------------------------


def test_the_confirmation_says_tie_or_hands_the_pick_to_a_faster_runner_up():
    space = load_space_text(STUDY)
    a, b = FakeResult("gguf-q8_0"), FakeResult("int8-weight")
    tie = Confirmation(a.config, b.config, Ratio(1.01, 0.97, 1.05))
    assert tie.outcome == TIE and "a tie: either" in tie.words()
    reversed_ = Confirmation(a.config, b.config, Ratio(0.9, 0.85, 0.95))
    found = answer(space, [(0, a), (1, b)], [], reversed_)
    assert reversed_.outcome == REVERSED and found.chosen.config == found.runner_up.config


def test_the_reproduction_is_a_suite_that_compiles():
    space = load_space_text(STUDY.replace('drafting = ["none", "prompt-lookup"]',
                                          'drafting = ["none", { method = "prompt-lookup", num_tokens = 4 }]'))
    for config in space.configurations():
        source = "import pytest\nfrom pytest_inferlab import SpeculativeSpec\n" + "\n".join(reproduction(config, space))
        compile(source, "pick.py", "exec")
    assert "SpeculativeSpec.of('prompt-lookup', num_tokens=4)" in "\n".join(reproduction(config, space))


def load_space_text(text: str):
    import tomllib

    return parse_space(tomllib.loads(text), "study.toml")


def FakeResult(label: str) -> TrialResult:
    space = load_space_text(STUDY)
    config = next(c for c in space.configurations() if c.label == label)
    speed, tpot, top1 = FIGURES[label]
    return TrialResult(config, None, Ratio(speed, speed, speed), speed, {"tpot_ms p50 <= 100": tpot},
                       tuple(agreement(f, top1) for f in space.floors), 1e8)


def test_the_command_refuses_a_bad_study_file_naming_it(tmp_path, capsys):
    from pytest_inferlab.cli import main

    path = write_study(tmp_path, "[axes]\nquantization = ['fp23']\n")
    assert main(["tune", str(path)]) == 2
    assert str(path) in capsys.readouterr().err


def test_the_study_report_in_a_real_browser_draws_every_trial_and_rings_the_pick(tmp_path, browser):
    from browsing import ARTIFACTS

    request = request_for(tmp_path, write_study(tmp_path), exhaustive=True)
    code, found = run_tune(request, say=lambda _: None, measure=FakeMeasure(tmp_path / "log.txt"))
    page = request.folder / "report.html"
    text = page.read_text()
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    browser.get(page.as_uri())
    body = browser.find_element("tag name", "body").text
    assert "Pick: gguf-q8_0" in body and "a tie: either" not in body
    assert "reproduce" in body.lower() and "gguf-q4_0" in body
    plot = browser.find_element("css selector", "svg")
    assert plot.size["width"] >= 600
    circles = plot.find_elements("css selector", "circle")
    assert len(circles) == len(found.results) + 1  # one per measured configuration, and the pick's ring
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "tune-report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_a_numeric_setting_is_searched_as_a_range(tmp_path):
    from pytest_inferlab.tune.study import screen

    text = STUDY.replace('drafting = ["none", "prompt-lookup"]',
                         'drafting = ["none", { method = "prompt-lookup", max_ngram = 2, num_tokens = { low = 2, high = 6 } }]')
    space = load_space(write_study(tmp_path, text))
    drafting = space.axes[1]
    assert drafting.labels == ["none", "prompt-lookup-max_ngram=2-num_tokens=2..6"]
    assert len(list(space.configurations())) == 4 * (1 + 5)  # the exhaustive run measures every value
    drafted = [c for c in screen(space, list(space.configurations())) if c.drafting is not None]
    assert [dict(c.drafting.settings) for c in drafted] == [{"max_ngram": 2, "num_tokens": 4}]  # the middle

    class Proposals(FakeMeasure):
        def __call__(self, plan, space, folder, pytest_args, timeout_s, reference=None):
            label = plan.config.label.replace("-max_ngram=2", "").split("-num_tokens=")[0]
            tokens = dict(plan.config.drafting.settings).get("num_tokens") if plan.config.drafting else None
            with self.log.open("a") as out:
                out.write(f"{plan.config.label}\n")
            speed, tpot, top1 = FIGURES[label]
            speed *= 1 + (tokens or 0) / 10  # more drafted tokens help here: the sampler should find it
            floors = tuple(agreement(f, top1) for f in space.floors)
            return TrialResult(plan.config, None, Ratio(speed, speed * 0.96, speed * 1.04), speed,
                               {b.label: tpot for b in space.slo}, floors, 1e8 / speed, {"used": 3}, machine_id="m")

    log = tmp_path / "log.txt"
    request = request_for(tmp_path, write_study(tmp_path, text.replace("trials = 4", "trials = 10")))
    code, found = run_tune(request, confirm=False, say=lambda _: None, measure=Proposals(log))
    measured = log.read_text().splitlines()
    assert len(measured) == len(set(measured)) == 10
    drafted = [line for line in measured if "num_tokens" in line]
    assert len({line.split("num_tokens=")[1] for line in drafted}) >= 2  # TPE proposed other values than the middle
    trials = open_study(request).get_trials()
    assert any(p.startswith("drafting:") for t in trials for p in t.params)  # a conditional integer parameter
