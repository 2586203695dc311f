"""The run's session object: the one place that wires specs, engines, probes, records and report."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Any

import pytest

from .device import Device
from .engines import Engine, load_engine
from .env import collect_environment, machine_id
from .options import Settings
from .record import Record
from .report import format_table
from .sources import resolve_model
from .specs import ModelSpec, WorkloadSpec
from .store import RecordStore
from .trace import Request
from .workloads import materialize

SESSION_KEY = pytest.StashKey["LabSession"]()
REPORT_KEY = "inferlab"  # key of the report row in item.user_properties (travels through xdist)


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class LabSession:
    """Holds one pytest run's state: settings, device, loaded engines (cached by spec), records."""

    def __init__(self, config: pytest.Config, settings: Settings, device: Device) -> None:
        self.config = config
        self.settings = settings
        self.device = device
        workerinput = getattr(config, "workerinput", None)
        self.worker_id: str | None = workerinput["workerid"] if workerinput else None
        self.run_id: str = (workerinput or {}).get("inferlab_run_id") or new_run_id()
        self.store = RecordStore(settings.results, self.run_id)
        self._engines: dict[ModelSpec, Engine] = {}
        self._requests: dict[tuple[ModelSpec, WorkloadSpec], list[Request]] = {}
        self._environment: dict[str, Any] | None = None
        self.rows: list[dict[str, Any]] = []
        self.written: list[Path] = []

    # ---- cached expensive objects -------------------------------------------------------
    def engine_for(self, model: str | ModelSpec) -> Engine:
        spec = model if isinstance(model, ModelSpec) else resolve_model(model, seed=self.settings.seed)
        if spec not in self._engines:
            self._apply_threads()
            self.progress(f"loading {spec.name} on {self.device.torch_name} ...")
            self._engines[spec] = load_engine("transformers", spec, self.device)
        return self._engines[spec]

    def requests_for(self, engine: Engine, workload: WorkloadSpec) -> list[Request]:
        key = (engine.info.model, workload)
        if key not in self._requests:
            self._requests[key] = materialize(workload, engine.encode, engine.info.vocab_size)
        return self._requests[key]

    def _apply_threads(self) -> None:
        import torch

        if self.settings.threads is not None and torch.get_num_threads() != self.settings.threads:
            torch.set_num_threads(self.settings.threads)

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

    # ---- output ---------------------------------------------------------------------------
    def write(self, record: Record) -> Path:
        path = self.store.write(record)
        self.written.append(path)
        return path

    def progress(self, text: str) -> None:
        """A progress line on the terminal, even while pytest captures the test's output."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or self.worker_id is not None or self.config.get_verbosity() < 0:
            return
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if capture is None:
            reporter.write_line(f"[inferlab] {text}")
            return
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(f"[inferlab] {text}")

    # ---- hooks ----------------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.rows.extend(value for key, value in report.user_properties if key == REPORT_KEY)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.rows:
            return
        terminalreporter.write_sep("=", "inferlab results")
        for line in format_table(self.rows):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"records: {self.store.folder}")


class XdistHooks:
    """Hands the controller's run id to every worker so one run's records share one folder."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["inferlab_run_id"] = self.run_id
