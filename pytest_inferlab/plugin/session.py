"""The run's session object: the one place that wires the parts of a run together.

It owns the run's identity (run id, xdist worker, machine fingerprint, environment), the record
store and the terminal progress line, and assembles the parts that do the work: the engine
factory (assembly/factory.py), the reference cache (measure/references.py), the gate
(judge/gate.py), the collection and summary hooks (plugin/collection.py, plugin/summary.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from pytest_inferlab.device import Device
from pytest_inferlab.ground.ids import new_run_id
from pytest_inferlab.assembly.factory import EngineFactory, EngineSettings, ModelChecks
from pytest_inferlab.judge.gate import Gate, GateSettings
from pytest_inferlab.measure.references import ReferenceCache
from pytest_inferlab.plugin.collection import Collection
from pytest_inferlab.plugin.fresh import ChildReports, FreshChild, FreshProcesses
from pytest_inferlab.plugin.lockstep_side import LockstepSide
from pytest_inferlab.plugin.options import MODEL, Settings, given, workload_overrides
from pytest_inferlab.plugin.progress import TerminalLine
from pytest_inferlab.plugin.recorder import RunIdentity
from pytest_inferlab.plugin.summary import Summary
from pytest_inferlab.record.baselines import BaselineStore
from pytest_inferlab.record.environment import collect_environment, machine_id
from pytest_inferlab.ground.jsonio import remove_stale_temps
from pytest_inferlab.record.record import Record
from pytest_inferlab.record.run_folder import pytest_command, start_manifest
from pytest_inferlab.record.store import RecordStore
from pytest_inferlab.run.lockstep import LockstepError, TurnClient
from pytest_inferlab.specs.core import QuantSpec, SpeculativeSpec

SESSION_KEY = pytest.StashKey["LabSession"]()


class LabSession:
    """Holds one pytest run's state and parts; registered as a plugin (with its collection and
    summary parts) by ``plugin.pytest_configure``."""

    def __init__(self, config: pytest.Config, settings: Settings, device: Device) -> None:
        self.config = config
        self.settings = settings
        self.device = device
        workerinput = getattr(config, "workerinput", None)  # set by xdist on its workers only
        self.worker_id: str | None = workerinput["workerid"] if workerinput else None
        self.fresh_child = FreshChild.from_env()  # this process measures one case of a fresh-process run
        self.run_id: str = ((workerinput or {}).get("inferlab_run_id")
                            or (self.fresh_child.run_id if self.fresh_child else None) or new_run_id())
        self.cases_measured = 0  # cases this process measured so far (conditions.process)
        # --inferlab-prompts / -requests / -input-tokens / -output-tokens, read and checked now
        self.workload_overrides = workload_overrides(settings, Path(config.invocation_params.dir))
        self.store = RecordStore(settings.results, self.run_id)
        self.written: list[Path] = []
        self._environment: dict[str, Any] | None = None
        self.checks = ModelChecks()
        self.engines = EngineFactory(engine_settings(settings, model_given=given(config, MODEL)), device, self.checks,
                                     self.progress)
        self.references = ReferenceCache(self.engines.engine_for, device.torch_name, settings.eval_limit,
                                         settings.seed, self.progress)
        self.gate = Gate(gate_settings(settings), BaselineStore(settings.baselines))
        self.collection = Collection(config, settings, device, self.checks, self.gate,
                                     self.fresh_child.series if self.fresh_child else None, self.workload_overrides)
        self.summary = Summary(settings, self.store, self.gate.baselines, reports=not self.helper)
        self.lockstep = lockstep_side(settings)
        self.line = TerminalLine(config, quiet=self.worker_id is not None or config.get_verbosity() < 0)

    @property
    def helper(self) -> bool:
        """An xdist worker or a fresh-process child: it measures, the controller reports."""
        return self.worker_id is not None or self.fresh_child is not None

    def round_turn(self, nodeid: str) -> Callable[[int], None] | None:
        """In an A/B run, what a case's rounds wait on for their turn; else None."""
        return self.lockstep.round_turn(nodeid) if self.lockstep else None

    def register(self) -> None:
        manager = self.config.pluginmanager
        manager.register(self, "inferlab-session")
        manager.register(self.collection, "inferlab-collection")
        manager.register(self.summary, "inferlab-summary")
        if self.lockstep is not None:
            manager.register(self.lockstep, "inferlab-ab-side")
        if self.fresh_child is not None:
            manager.register(ChildReports(self.config, self.fresh_child.reports), "inferlab-fresh-child")
        elif self.settings.fresh_process and self.worker_id is None:
            manager.register(FreshProcesses(self.config, self.run_id, lambda: self.gate.series), "inferlab-fresh")

    # ---- identity of the run --------------------------------------------------------------
    @property
    def environment(self) -> dict[str, Any]:
        if self._environment is None:
            import torch

            env = collect_environment(self.device, self.config.rootpath)
            env["threads"] = torch.get_num_threads()
            env["xdist_worker"] = self.worker_id
            self.config.hook.pytest_inferlab_update_environment(config=self.config, environment=env)
            self._environment = env
        return self._environment

    @property
    def machine_id(self) -> str:
        return machine_id(self.environment)

    def identity(self) -> RunIdentity:
        return RunIdentity(self.run_id, self.machine_id, self.environment)

    # ---- output ---------------------------------------------------------------------------
    def write(self, record: Record) -> Path:
        first = not self.written
        if first:  # the run's manifest (status running), before its first record
            self.store.folder.mkdir(parents=True, exist_ok=True)
            start_manifest(self.store.folder, self.run_id, pytest_command())
        path = self.store.write(record)
        self.cases_measured += 1
        if first:  # the run's installed packages, once per run folder (xdist workers share it)
            self.store.write_packages(self.config.rootpath)
        self.written.append(path)
        return path

    def progress(self, text: str, live: bool = False) -> None:
        """A progress line on the terminal, even while pytest captures the test's output; ``live``:
        rewritten in place by the next live line (on a terminal)."""
        self.line.write(text, live)

    # ---- hooks ----------------------------------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Temporary files of writers that died mid-write (a SIGKILL) are removed, never read."""
        if not self.helper:
            remove_stale_temps(self.settings.results / "runs")
            remove_stale_temps(self.settings.baselines)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        """Variants the next case does not use are let go, so no case carries an earlier one's model."""
        self.engines.release_variants(keep=variants_used(nextitem))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Stop every process the run started (tensor-parallel groups, the local server); remove the
        files of its references."""
        self.engines.close()
        self.references.close()


class XdistHooks:
    """Hands the controller's run id to every worker so one run's records share one folder."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["inferlab_run_id"] = self.run_id


def variants_used(item: pytest.Item | None) -> set[QuantSpec]:
    """The quantization specs ``item``'s parameters name: its variant, and its draft's quantization."""
    from pytest_inferlab.optimizations.quant import resolve_quant

    params = getattr(getattr(item, "callspec", None), "params", {})  # pytest sets callspec on parametrized items only
    names = [params.get("quantization")]
    speculative = params.get("speculative")
    if isinstance(speculative, SpeculativeSpec):
        names.append(dict(speculative.settings).get("quant"))
    used = set()
    for name in names:
        if name is not None:
            try:
                used.add(resolve_quant(name))
            except (LookupError, ValueError):
                continue  # collection reported it; nothing to keep
    return used


def gate_settings(settings: Settings) -> GateSettings:
    return GateSettings(alpha=settings.alpha, tolerance=settings.tolerance, max_interference=settings.max_interference,
                        confirm=settings.confirm, no_gate=settings.no_gate, save_baseline=settings.save_baseline)


def engine_settings(settings: Settings, model_given: bool = False) -> EngineSettings:
    return EngineSettings(model=settings.model, seed=settings.seed, threads=settings.threads,
                          server_url=settings.server_url, server=settings.server, server_model=settings.server_model,
                          load_processes=settings.load_processes, model_given=model_given)


def lockstep_side(settings: Settings) -> LockstepSide | None:
    """This process's side of an A/B run, connected to its coordinator (--inferlab-ab-turns)."""
    if settings.ab_turns is None:
        return None
    if settings.ab_side is None:
        raise pytest.UsageError("--inferlab-ab-turns needs --inferlab-ab-side=base|candidate (both are set by inferlab ab)")
    try:
        return LockstepSide(TurnClient(settings.ab_turns, settings.ab_side))
    except LockstepError as exc:
        raise pytest.UsageError(f"--inferlab-ab-turns={settings.ab_turns}: {exc}") from None
