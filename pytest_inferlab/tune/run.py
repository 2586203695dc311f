"""``inferlab tune STUDY.toml``: prune, search, confirm, answer; everything under ``<results>/tune/<name>/``.

The folder holds the study's journal (Optuna's storage, readable by ``optuna-dashboard``), one
folder per trial (its plan, pytest log and run folder with the record), ``tune.json`` (the answer as
data) and ``report.html`` (the front to look at). Exit status: 0 a pick, 1 no configuration met the
limits, 2 bad input or a study that cannot go on.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Sequence

from pytest_inferlab.device import CPU, Device
from pytest_inferlab.ground.jsonio import write_json_replace, write_text_replace
from pytest_inferlab.tune.answer import Answer, Confirmation, answer
from pytest_inferlab.tune.prune import split
from pytest_inferlab.tune.space import SPEED, TASK, Space
from pytest_inferlab.tune.study import Measure, StudyError, TuneRequest, results_of, search
from pytest_inferlab.tune.trial import TrialPlan, run_trial


def _option(args: Sequence[str], flag: str) -> str | None:
    """A pytest option's value in the arguments given after ``--`` (``--flag=V`` or ``--flag V``)."""
    for index, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and index + 1 < len(args):
            return args[index + 1]
    return None


def session_target(pytest_args: Sequence[str]) -> tuple[Device, object]:
    """The device and model spec the trials will run (for pruning before anything runs)."""
    from pytest_inferlab.engines.sources import resolve_model

    gpu = _option(pytest_args, "--inferlab-gpu")
    device = Device("cuda", int(gpu)) if gpu is not None else CPU
    model = resolve_model(_option(pytest_args, "--inferlab-model") or "smollm2-135m")
    return device, model


def this_machine(device: Device, pytest_args: Sequence[str]) -> str:
    """The machine fingerprint a trial's record will carry (record/environment.py), before any trial:
    the same device, stack and threads (--inferlab-threads, else torch's count)."""
    import torch

    from pytest_inferlab.plugin.options import THREADS
    from pytest_inferlab.record.environment import collect_environment, machine_id

    env = collect_environment(device, Path.cwd())
    threads = _option(pytest_args, THREADS)
    env["threads"] = int(threads) if threads and threads.isdigit() else torch.get_num_threads()
    return machine_id(env)


def run_tune(request: TuneRequest, confirm: bool = True, say: Callable[[str], None] = print,
             measure: Measure = run_trial) -> tuple[int, Answer | None]:
    """The whole command; ``measure`` runs one trial (tests give a table of known figures)."""
    space = request.space
    started = time.perf_counter()
    try:
        device, model = session_target(request.pytest_args)
    except LookupError as exc:
        say(f"inferlab tune: {exc}")
        return 2, None
    if request.machine is None:  # checked against the study's before any trial
        request = dataclasses.replace(request, machine=this_machine(device, request.pytest_args))
    reason = objective_unmeasurable(space, request.pytest_args) or floor_tasks_unavailable(space)
    if reason:
        say(f"inferlab tune: {space.source}: {reason}")
        return 2, None
    feasible, pruned = split(space, device, model)
    say(f"study {space.name} ({space.source}): {len(feasible) + len(pruned)} configurations, {len(pruned)} pruned "
        f"before running, {'every feasible one' if request.exhaustive else f'at most {space.trials}'} measured; "
        f"folder {request.folder}")
    for item in pruned:
        say(f"  pruned: {item.config.label}: {item.reason}")
    if not feasible:
        say("inferlab tune: no configuration of the space can run here (every one was pruned, above)")
        return 2, None
    try:
        study = search(request, feasible, pruned, say, measure)
    except StudyError as exc:
        say(f"inferlab tune: {exc}")
        return 2, None
    results = sorted(((n, r) for n, r in results_of(study, space).values()), key=lambda item: item[0])
    found = answer(space, results, pruned)
    confirmation = None
    if confirm and found.pick is not None and found.runner_up is not None and space.objective == SPEED:
        confirmation = _confirm(request, found, measure)
    found = answer(space, results, pruned, confirmation, time.perf_counter() - started)
    write_json_replace(request.folder / "tune.json", found.to_dict())
    from pytest_inferlab.tune.report import tune_page

    write_text_replace(request.folder / "report.html", tune_page(found))
    say("\n".join(found.lines()))
    say(f"written: {request.folder / 'tune.json'}, {request.folder / 'report.html'}")
    return (0 if found.chosen is not None else 1), found


PER_REQUEST_SLO = ("goodput_req_per_s", "slo_attainment")  # measured only against a per-request SLO


def objective_unmeasurable(space: Space, pytest_args: Sequence[str]) -> str | None:
    """Goodput and SLO attainment count requests that meet a per-request SLO: without one given to the
    trials (after ``--``), no trial could measure the objective."""
    from pytest_inferlab.plugin.options import SLO_OPTION

    if space.objective in PER_REQUEST_SLO and _option(pytest_args, SLO_OPTION) is None:
        return (f"[study] objective={space.objective!r} counts requests that meet a per-request SLO: give it to the "
                f"trials after --, e.g. inferlab tune {space.source} -- {SLO_OPTION}='ttft_ms=2000 tpot_ms=150'")
    return None


def floor_tasks_unavailable(space: Space) -> str | None:
    """Why the study's task floors cannot be decided here (lm-eval missing, a task it does not know),
    before any trial; None when they can (or there are none)."""
    tasks = sorted({floor.task for floor in space.floors if floor.kind == TASK})
    if not tasks:
        return None
    from pytest_inferlab.measure.evals import SHIPPED_TASKS, tasks_dir, unavailable_reason

    reason = unavailable_reason()
    if reason:
        return f"[floor] {reason}"
    from lm_eval.tasks import TaskManager

    unknown = [task for task in tasks if task not in TaskManager(include_path=tasks_dir()).all_tasks]
    if unknown:
        return (f"[floor] lm-eval task(s) {unknown} unknown; shipped: {', '.join(SHIPPED_TASKS)} (or any lm-eval task whose "
                "data is in the local Hugging Face cache)")
    return None


def _confirm(request: TuneRequest, found: Answer, measure: Measure) -> Confirmation:
    """The pick against the runner-up, head to head in one process, until their ratio is precise."""
    pick, runner_up = found.pick.config, found.runner_up.config
    folder = request.folder / "confirmation" / f"{_slug(pick.label)}--vs--{_slug(runner_up.label)}"
    # incumbent 0: never stopped early, measured until the ratio is precise (or the rounds run out)
    plan = TrialPlan("confirmation", pick, request.space.workload, request.space.workload_overrides, runner_up, 0.0)
    result = measure(plan, request.space, folder, request.pytest_args, request.trial_timeout_s)
    if result.failed or result.speed is None:
        return Confirmation(pick, runner_up, None, result.failed or "no paired ratio measured")
    return Confirmation(pick, runner_up, result.speed)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")[:60]


def study_folder(results: Path, space: Space, exhaustive: bool) -> Path:
    return results / "tune" / (space.name + ("-exhaustive" if exhaustive else ""))
