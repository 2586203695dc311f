"""The search: an Optuna study asked and told one configuration at a time (``inferlab tune``).

The sampler is Optuna's TPE over the axes' categorical choices (multivariate, so it learns which
combinations go together); each trial it proposes is measured by ``trial.py`` in a pytest process of
its own, and told back with the objective (the paired ratio to the study's reference) and its
constraints (SLOs, accuracy floors: <= 0 is feasible). What Optuna's own pruners cannot do here
(its pruners compare unpaired per-step values) the trial does itself: it stops as soon as its paired
interval is wholly below the incumbent's, and is told PRUNED with that interval's centre.

The study lives in a storage: by default a journal file in the study's folder (one machine, any
number of processes, nothing to start); ``--storage URL`` (PostgreSQL, MySQL) for several machines.
A re-run resumes it: finished trials are kept, a trial left RUNNING by a worker that is gone is
told FAIL. A configuration is measured once per study: a repeat proposal is told the value already
measured, a configuration another worker is measuring is skipped.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from pytest_inferlab.judge.sequential import VIOLATED
from pytest_inferlab.tune.floor import BELOW, NOT_SHOWN
from pytest_inferlab.tune.prune import Pruned
from pytest_inferlab.tune.space import SPEED, Config, Space
from pytest_inferlab.tune.trial import DEFAULT_TIMEOUT_S, TrialPlan, TrialResult, run_trial

RESULT, CONFIG_KEY, WORKER, IMPOSSIBLE, REPEAT = "result", "config_key", "worker", "impossible", "repeat_of"
EARLY = ("below the incumbent", VIOLATED)  # stop reasons of a trial cut short (judge/sequential.py: below, exceeds)
CLAIM_SETTLE_S = 0.5  # between claiming a configuration and checking that no earlier trial claimed it


class StudyError(RuntimeError):
    """A study that cannot go on (another machine's study, a storage that does not open)."""


@dataclass(frozen=True, slots=True)
class TuneRequest:
    space: Space
    folder: Path  # <results>/tune/<study name>
    storage: str | None = None  # an Optuna RDB URL; None: the journal file in ``folder``
    pytest_args: tuple[str, ...] = ()
    trial_timeout_s: float = DEFAULT_TIMEOUT_S
    exhaustive: bool = False  # every feasible configuration, in the file's order, each measured to precision
    machine: str | None = None  # this worker's machine fingerprint (run.py: this_machine), checked before any trial

    @property
    def study_name(self) -> str:
        return self.space.name + ("-exhaustive" if self.exhaustive else "")

    def storage_url(self) -> Any:
        import optuna
        from optuna.storages.journal import JournalFileBackend

        if self.storage:
            return self.storage
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.study_name}.journal"
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def key(config: Config) -> str:
    """A configuration's identity in the storage (its specs' canonical JSON)."""
    import json

    return json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def open_study(request: TuneRequest) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = request.space
    # the startup design is the screen (screen()), enqueued; TPE proposes from the first finished trial on
    # group: the ranged settings exist only beside their choice (a conditional space); Optuna 5.1 still
    # calls the argument experimental (verified on 5.1.0), so that one warning is silenced here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=space.seed, multivariate=True, group=True, n_startup_trials=1)
    try:
        return optuna.create_study(study_name=request.study_name, storage=request.storage_url(), sampler=sampler,
                                   direction="maximize" if space.maximize else "minimize", load_if_exists=True)
    except Exception as exc:  # an unreachable database, a bad URL: named, not a traceback
        raise StudyError(f"--storage {request.storage or request.folder}: the study's storage does not open: {exc}") from None


def fail_orphans(study: Any, say: Callable[[str], None]) -> None:
    """Trials left RUNNING by a worker of this host that is gone (killed, interrupted) are told FAIL."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get(WORKER, ""))
        name, _, pid = worker.partition(":")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            say(f"trial {trial.number} ({trial.user_attrs.get('label')}): its worker {worker} ended before it "
                "finished (interrupted or killed): told FAIL; measured again if proposed again")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def results_of(study: Any, space: Space) -> dict[str, tuple[int, TrialResult]]:
    """Every configuration measured so far (first measurement), by key: (trial number, result)."""
    found: dict[str, tuple[int, TrialResult]] = {}
    for trial in study.get_trials(deepcopy=False):
        data = trial.user_attrs.get(RESULT)
        if data and REPEAT not in trial.user_attrs and trial.user_attrs.get(CONFIG_KEY) not in found:
            found[trial.user_attrs[CONFIG_KEY]] = (trial.number, TrialResult.from_dict(data, space))
    return found


def screen(space: Space, feasible: Sequence[Config]) -> list[Config]:
    """The startup design: one factor at a time from the reference (every value of every axis with the
    other axes at the reference's), in the file's order. Which quantization is fastest, and what each
    drafting method or cache configuration does alone, are the main effects; the sampler then searches
    their combinations. A choice with ranged settings is screened at the middle of its values that can
    run (a batch range past the workload's requests is pruned at its top). Configurations that cannot
    run are left out."""
    reference, allowed, out = space.reference, set(feasible), []
    for axis in space.axes:
        for choice in axis.choices[1:]:
            runnable = [c for c in (dataclasses.replace(reference, **{axis.name: value}) for value in choice.expand())
                        if c in allowed]
            if runnable and runnable[len(runnable) // 2] not in out:
                out.append(runnable[len(runnable) // 2])
    return out


def weights_below_floor(results: dict[str, tuple[int, TrialResult]], config: Config) -> str | None:
    """Fidelity and task accuracy are the weights' (scored by the variant's forward pass): a configuration
    whose quantization missed a floor in an earlier trial (shown below, or not shown) misses it too;
    drafting and lossless caches do not change the weights. A check without data (a quantized cache,
    a crash) says nothing about the weights."""
    for number, result in results.values():
        if result.config.quantization != config.quantization:
            continue
        missed = [c for c in result.floors if c.outcome in (BELOW, NOT_SHOWN)]
        if missed:
            return f"its weights ({config.quantization.label}) missed the floor in trial {number}: {missed[0].words()}"
    return None


def incumbent(results: Sequence[TrialResult], space: Space) -> TrialResult | None:
    """The best feasible configuration so far (by its objective)."""
    feasible = [r for r in results if r.feasible(space.slo) and r.objective is not None]
    if not feasible:
        return None
    return max(feasible, key=lambda r: r.objective if space.maximize else -r.objective)


Measure = Callable[..., TrialResult]  # run_trial's signature: (plan, space, folder, pytest_args, timeout, reference)


def search(request: TuneRequest, feasible: Sequence[Config], pruned: Sequence[Pruned],
           say: Callable[[str], None] = print, measure: Measure = run_trial) -> Any:
    """Propose, measure and tell until the budget of measured trials is spent (or every feasible
    configuration is measured); returns the study. ``measure`` runs one trial (tests give a table)."""
    return Search(request, feasible, pruned, say, measure).run()


class Search:
    """One worker's loop over a study: what to propose next, what to tell without measuring, and the
    measured trials."""

    MAX_IDLE = 20  # proposals in a row that measured nothing before the next unmeasured one is enqueued

    def __init__(self, request: TuneRequest, feasible: Sequence[Config], pruned: Sequence[Pruned],
                 say: Callable[[str], None], measure: Measure) -> None:
        self.request, self.space, self.feasible, self.say, self.measure = request, request.space, feasible, say, measure
        self.impossible = {key(p.config): p.reason for p in pruned}
        self.wanted = {key(c) for c in feasible}
        self.budget = len(feasible) if request.exhaustive else min(self.space.trials, len(feasible))
        # the exhaustive run's order: the file's; the search's startup: the one-factor screen, then TPE
        self.design = list(feasible) if request.exhaustive else screen(self.space, feasible)[:self.budget]
        self.settled: set[str] = set()  # not measured, known infeasible: their weights failed a floor
        self.study: Any = None

    def run(self) -> Any:
        self.study = open_study(self.request)
        _check_space(self.study, self.space)
        _check_worker(self.study, self.request.machine)
        fail_orphans(self.study, self.say)
        idle = 0
        for _ in range(50 * max(1, len(self.wanted))):  # a guard: the loop always ends sooner
            done = results_of(self.study, self.space)
            open_keys = self.wanted - self.settled - set(done)
            if len(self.wanted & set(done)) >= self.budget or not open_keys:
                return self.study
            if not self._enqueue_next(open_keys, idle >= self.MAX_IDLE):
                return self.study
            trial = self.study.ask()
            config = suggest(trial, self.space)
            for name, value in ((CONFIG_KEY, key(config)), (WORKER, worker_id()), ("label", config.label)):
                trial.set_user_attr(name, value)
            if self._told_without_measuring(trial, config, done):
                idle += 1
                continue
            idle = 0
            self._measure(trial, config, done)
        raise StudyError("the study did not finish within its proposals; please report this")

    def _enqueue_next(self, open_keys: set[str], idle: bool) -> bool:
        """The design's next configuration (or, after idle proposals, any open one) for the next ask;
        False when every open configuration is being measured by another worker."""
        pending = [c for c in self.design if key(c) in open_keys and not _running(self.study, key(c))]
        if not pending and not idle:
            return True  # the sampler proposes
        nxt = pending[0] if pending else next(
            (c for c in self.feasible if key(c) in open_keys and not _running(self.study, key(c))), None)
        if nxt is None:
            return False
        self.study.enqueue_trial(_params(self.space, nxt), skip_if_exists=False)
        return True

    def _told_without_measuring(self, trial: Any, config: Config, done: dict[str, tuple[int, TrialResult]]) -> bool:
        """Impossible, weights already below the floor, measured before, or claimed by another worker:
        told at once (PRUNED, or a repeat's earlier value)."""
        from optuna.trial import TrialState

        k = key(config)
        below = None if self.request.exhaustive or k in done else weights_below_floor(done, config)
        if k in self.impossible or below:
            if below:
                self.settled.add(k)
                self.say(f"trial {trial.number}: {config.label}: not measured: {below}")
            trial.set_user_attr(IMPOSSIBLE, self.impossible.get(k) or below)
            trial.set_constraint("impossible" if k in self.impossible else "floor", 1.0)
            self.study.tell(trial, state=TrialState.PRUNED)
            return True
        if k in done:
            number, result = done[k]
            trial.set_user_attr(REPEAT, number)
            _tell(self.study, trial, result, self.space, repeat=True)
            return True
        time.sleep(CLAIM_SETTLE_S)
        if _claimed_earlier(self.study, trial.number, k):
            trial.set_user_attr(REPEAT, "measured by another worker")
            self.study.tell(trial, state=TrialState.PRUNED)
            return True
        return False

    def _measure(self, trial: Any, config: Config, done: dict[str, tuple[int, TrialResult]]) -> None:
        from optuna.trial import TrialState

        space = self.space
        best = incumbent([r for _, r in done.values()], space)
        # 0: no early stop, measured until precise (the first trial; every trial of the exhaustive run)
        bar = best.speed.low if (best is not None and best.speed is not None and space.objective == SPEED
                                 and not self.request.exhaustive) else 0.0
        self.say(f"trial {trial.number} ({len(self.wanted & set(done)) + 1}/{self.budget}): {config.label}"
                 + (f"; stops early below the incumbent's {bar:.2f}x ({best.config.label})" if bar else ""))
        against = None if space.reference == Config() else space.reference  # None: the plain model fixture
        plan = TrialPlan(f"trial-{trial.number}", config, space.workload, space.workload_overrides, against, bar,
                         space.floors if config != space.reference else (), space.slo)
        try:
            result = self.measure(plan, space, self.request.folder / "trials" / f"{trial.number:04d}",
                                  self.request.pytest_args, self.request.trial_timeout_s, reference=space.reference)
            _check_machine(self.study, result)
        except BaseException as exc:  # interrupted, or measured on another kind of machine
            trial.set_user_attr("failed", str(exc) if isinstance(exc, StudyError) else "interrupted")
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        trial.set_user_attr(RESULT, result.to_dict())
        _tell(self.study, trial, result, space)
        self.say(f"  {describe(result, space)}")


def _values(config: Config) -> dict[str, Any]:
    return {"quantization": config.quantization, "kv_cache": config.kv_cache, "drafting": config.drafting,
            "batch_size": config.batch_size}


def _params(space: Space, config: Config) -> dict[str, Any]:
    """The Optuna parameters that propose ``config`` (each axis' choice and its ranged settings)."""
    values = _values(config)
    return {name: value for axis in space.axes for name, value in axis.params_of(values[axis.name]).items()}


def suggest(trial: Any, space: Space) -> Config:
    """The configuration a trial proposes: each axis' choice, then the ranged settings of that choice
    (integer parameters that exist only when their choice is proposed)."""
    chosen = {}
    for axis in space.axes:
        choice = axis.choice(trial.suggest_categorical(axis.name, axis.labels))
        chosen[axis.name] = choice.concrete({name: trial.suggest_int(axis.param(choice.label, name), low, high)
                                             for name, low, high in choice.ranges})
    return space.config(chosen)


def _running(study: Any, k: str) -> bool:
    from optuna.trial import TrialState

    return any(t.user_attrs.get(CONFIG_KEY) == k for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _claimed_earlier(study: Any, number: int, k: str) -> bool:
    """Another worker's earlier trial holds this configuration (running, or finished with a result)."""
    from optuna.trial import TrialState

    for other in study.get_trials(deepcopy=False):
        if other.number < number and other.user_attrs.get(CONFIG_KEY) == k and REPEAT not in other.user_attrs \
                and (other.state == TrialState.RUNNING or RESULT in other.user_attrs):
            return True
    return False


def _tell(study: Any, trial: Any, result: TrialResult, space: Space, repeat: bool = False) -> None:
    from optuna.trial import TrialState

    for check in result.floors:  # graded: how far the shown bound falls short of the floor
        trial.set_constraint(check.floor.label, check.shortfall)
    if result.objective is None and result.floors and not result.floors_passed:  # below a floor before timing
        study.tell(trial, state=TrialState.PRUNED)
        return
    if result.failed or result.objective is None:
        trial.set_user_attr("failed", result.failed or f"no {space.objective} measured")
        study.tell(trial, state=TrialState.FAIL)
        return
    for bound in space.slo:
        value = result.slo.get(bound.label)
        trial.set_constraint(bound.label, (value - bound.limit) / bound.limit if value is not None else 1.0)
    early = not repeat and any(reason in str(result.rounds.get("stopped") or "") for reason in EARLY)
    if early:  # cut short below the incumbent or beyond an SLO: pruned, its last figure what the sampler learns from
        trial.report(result.objective, step=int(result.rounds.get("used") or 1))
        study.tell(trial, state=TrialState.PRUNED)
        return
    study.tell(trial, result.objective)


def _check_space(study: Any, space: Space) -> None:
    """A study keeps the axes it was started with: a changed file under the same name is a new study."""
    axes = {axis.name: [[c.label, [list(r) for r in c.ranges]] for c in axis.choices] for axis in space.axes}
    known = study.user_attrs.get("axes")
    if known is None:
        study.set_user_attr("axes", axes)
        study.set_user_attr("workload", [space.workload, dict(space.workload_overrides)])
        study.set_user_attr("objective", space.objective)
    elif known != axes or study.user_attrs.get("objective") != space.objective:
        raise StudyError(f"study {study.study_name!r} in this storage was started with other axes or objective "
                         f"({known}, {study.user_attrs.get('objective')}); give the changed file another [study] name")


def _check_worker(study: Any, machine: str | None) -> None:
    """Before any trial: the first worker names the study's machine (as ``this_machine`` sees it); a
    worker on another kind of machine cannot join (its figures would not be comparable)."""
    _one_machine(study, "worker_machine", machine, "this worker is machine", "was started on")


def _check_machine(study: Any, result: TrialResult) -> None:
    """The first trial names the study's machine as its record does (a hook may add to the
    fingerprint); a worker whose trial was measured on another stops."""
    _one_machine(study, "machine_id", result.machine_id, "this worker measures on machine", "on")


def _one_machine(study: Any, key: str, machine: str | None, this: str, theirs: str) -> None:
    """The study's ``key`` names its machine (the first to come sets it); another machine is refused."""
    if machine is None:
        return
    known = study.user_attrs.get(key)
    if known is None:
        study.set_user_attr(key, machine)
    elif known != machine:
        raise StudyError(f"{this} {machine}, the study {study.study_name!r} {theirs} {known}: "
                         "ratios from two kinds of machine are not one front; run this worker on a study of its own "
                         "([study] name)")


def describe(result: TrialResult, space: Space) -> str:
    if result.failed:
        return f"failed: {result.failed}"
    parts = [f"{result.speed.words()} the reference's tokens/s" if result.speed else
             f"{space.objective} {result.objective}" if result.objective is not None else "not timed"]
    stopped = result.rounds.get("stopped")
    if stopped:
        parts[0] += f" ({stopped})"
    parts += [f"{b.metric} {b.statistic} {result.slo[b.label]:.1f} (SLO <= {b.limit:g})" for b in space.slo
              if result.slo.get(b.label) is not None]
    parts += [check.words() for check in result.floors]
    return "; ".join(parts)
