"""One trial of ``inferlab tune``: an ordinary lab case, run by pytest in a process of its own.

``inferlab tune`` writes the trial's plan (a JSON file) and runs ``pytest`` on this module with
``--inferlab-tune-trial=PLAN``. The case is the configuration's engine measured against the study's
reference in alternating rounds (``lab.measure(..., reference=...)``), so its figure is a paired
ratio whose interval the host's drift between trials does not widen; ``incumbent`` stops it as
soon as its interval is wholly below the best configuration's, ``bounds`` once its own rounds clearly
violate an SLO; the accuracy floors are decided before any timing (tune/floor_evidence.py). The confirmation measures the pick
against the runner-up the same way (``against`` names the runner-up). Its record lands in the
trial's own run folder, with its spec id and environment, like any suite's.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_inferlab.engines.base import Engine
from pytest_inferlab.optimizations.kv import kv_caches, unsupported_for_engine
from pytest_inferlab.optimizations.speculative import SpeculativeUnsupported
from pytest_inferlab.plugin.fixtures import with_command_line
from pytest_inferlab.plugin.options import TUNE_TRIAL
from pytest_inferlab.specs.workloads import resolve_workload
from pytest_inferlab.ground.jsonio import write_json_replace
from pytest_inferlab.specs.slo import Bound
from pytest_inferlab.tune.floor import BELOW, FLOOR_FILE
from pytest_inferlab.tune.floor_evidence import FloorJudge
from pytest_inferlab.tune.space import Config, Floor


def _plan(config: pytest.Config) -> dict[str, Any]:
    path = config.getoption("inferlab_tune_trial")
    if not path:
        raise pytest.UsageError(f"{__file__} is one trial of `inferlab tune` ({TUNE_TRIAL}=PLAN.json): run "
                                "`inferlab tune STUDY.toml` (docs/tune.md)")
    return json.loads(Path(path).read_text(encoding="utf-8"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    plan = _plan(metafunc.config)
    metafunc.parametrize("trial_plan", [plan], ids=[plan["id"]])


def _build(request: pytest.FixtureRequest, config: Config, drafted: bool = True) -> Engine:
    """The configuration's engine, composed as the suites' fixtures compose it (the plain
    configuration is the ``model`` fixture itself); ``drafted=False``: without its drafting (the
    weights and cache the floors judge)."""
    session, model = request.getfixturevalue("inferlab_session"), request.getfixturevalue("model")
    config = config.engine
    if config == Config():
        return model
    try:
        if config.kv_cache.kind != "dynamic" or config.kv_cache.settings:
            reason = unsupported_for_engine(config.kv_cache, model.in_process_module("a KV-cache configuration").config,
                                            model.info.model.name)
            if reason:
                pytest.fail(reason, pytrace=False)
            engine = model.with_kv_cache(config.kv_cache, kv_caches.get(config.kv_cache.kind))
        else:
            engine = session.engines.engine_for(model.info.model, quant=config.quantization)
        if drafted and config.drafting is not None:
            engine = session.engines.speculative_engine(engine, config.drafting)
    except (SpeculativeUnsupported, ValueError, RuntimeError) as exc:
        pytest.fail(f"{config.label}: {exc}", pytrace=False)
    return engine


def _floors_first(request: pytest.FixtureRequest, config: Config, model: Engine, plan: dict[str, Any]) -> None:
    """Every floor decided before any timing, into FLOOR_FILE; a configuration shown below one is not
    timed (the case skips). Drafting is left out: greedy drafting is checked exact by the lab itself."""
    floors = [Floor.from_dict(floor) for floor in plan.get("floors") or ()]
    if not floors:
        return
    judge = FloorJudge(request.getfixturevalue("inferlab_session").references, _build(request, config, drafted=False),
                       model)
    checks = [judge.check(floor) for floor in floors]
    write_json_replace(Path(plan["folder"]) / FLOOR_FILE, [check.to_dict() for check in checks])
    below = [check for check in checks if check.outcome == BELOW]
    if below:
        pytest.skip("below the accuracy floor before timing: " + "; ".join(check.words() for check in below))


def test_trial(request: pytest.FixtureRequest, lab: Any, model: Engine, trial_plan: dict[str, Any]) -> None:
    config = Config.from_dict(trial_plan["config"])
    _floors_first(request, config, model, trial_plan)
    engine = _build(request, config)
    against = Config.from_dict(trial_plan["against"]) if trial_plan.get("against") else Config()
    reference = _build(request, against)
    workload = with_command_line(
        dataclasses.replace(resolve_workload(trial_plan["workload"]), **trial_plan.get("overrides", {})),
        request.getfixturevalue("inferlab_session").workload_overrides)
    lab.measure(engine, workload, batch_size=config.batch_size, reference=reference,
                reference_batch_size=against.batch_size, incumbent=trial_plan.get("incumbent"),
                bounds=tuple(Bound(**bound) for bound in trial_plan.get("bounds") or ()))
