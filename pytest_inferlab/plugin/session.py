"""The run's session object: the one place that wires specs, engines, probes, records and report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pytest

from pytest_inferlab.record.baselines import BaselineError, BaselineStore, save_valid
from pytest_inferlab.device import Device
from pytest_inferlab.specs.load import parse_load
from pytest_inferlab.engines import Engine, load_engine
from pytest_inferlab.record.environment import collect_environment, machine_id
from pytest_inferlab.plugin.options import Settings
from pytest_inferlab.judge.policy import policies_for
from pytest_inferlab.run.probes.interference import MEASURED_PIDS
from pytest_inferlab.run.batching import resolve_batching, unsupported_batching_reason
from pytest_inferlab.optimizations.kv import resolve_kv, unsupported_kv_reason, unsupported_pairing
from pytest_inferlab.optimizations.speculative import resolve_speculative, unsupported_speculative_reason
from pytest_inferlab.optimizations.quant import resolve_quant, unsupported_reason
from pytest_inferlab.record.jsonio import remove_stale_temps
from pytest_inferlab.record.record import Record, RecordError, load_record
from pytest_inferlab.outputs.report import format_table, format_verdict_summary
from pytest_inferlab.engines.sources import ModelSourceError, check_model, resolve_model
from pytest_inferlab.specs.core import ModelSpec, QuantSpec, SamplingSpec, SpeculativeSpec, WorkloadSpec
from pytest_inferlab.record.store import RecordStore
from pytest_inferlab.run.trace import Request
from pytest_inferlab.judge.verdict import NoiseModel, Verdict, bonferroni_alpha, judge_items, judge_run
from pytest_inferlab.run.workloads import materialize, resolve_workload

SESSION_KEY = pytest.StashKey["LabSession"]()
REPORT_KEY = "inferlab"  # key of the report row in item.user_properties (travels through xdist)
VERDICT_KEY = "inferlab-verdicts"


@dataclass(frozen=True, slots=True)
class Judgement:
    """Verdicts of one case and what they were judged against."""

    verdicts: list[Verdict]
    baseline: dict[str, Any] | None  # {"path", "machine_id", "same_machine", "gating"} or {"error"}
    gating: bool
    warning: str | None = None
    invalid: str | None = None  # why the measurement cannot be trusted (kept in conditions.invalid)
    error: str | None = None  # the baseline could not be read: the case fails, its record is kept


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def item_verdicts(current: dict[str, Any], baseline: dict[str, Any], alpha: float) -> list[Verdict]:
    """McNemar verdicts of per-item task correctness against the baseline's, where both have the
    same items (same task, same --inferlab-eval-limit)."""
    verdicts = []
    for task, result in sorted(current.items()):
        stored = baseline.get(task)
        items = result.get("items")
        if (items is None or stored is None or stored.get("limit") != result.get("limit")
                or len(stored["items"]) != len(items)):
            continue
        verdicts.append(judge_items(f"{task}.items", stored["items"], items, alpha))
    return verdicts


def _shown(value: Any) -> str:
    """A parameter value as the error shows it: names as typed, specs by their name."""
    return repr(value) if isinstance(value, str) else repr(getattr(value, "name", value))


def grouped_by_variant(items: list[pytest.Item]) -> list[pytest.Item]:
    """Cases of one quantized variant next to each other (in their first case's place, otherwise in
    collection order): the session keeps one variant at a time, so interleaving would rebuild them."""
    def group(index: int, item: pytest.Item) -> tuple[str, str] | int:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "quantization" not in callspec.params:
            return index
        return str(item.path), repr(callspec.params["quantization"])

    first: dict[tuple[str, str] | int, int] = {}
    keys = [group(i, item) for i, item in enumerate(items)]
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    return [items[i] for i in sorted(range(len(items)), key=lambda i: (first[keys[i]], i))]


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
        self._references: dict[ModelSpec, Any] = {}  # fidelity reference log-probs per unquantized model
        self._requests: dict[tuple[ModelSpec, WorkloadSpec], list[Request]] = {}
        self._evals: dict[tuple[ModelSpec, str, int | None], Any] = {}  # lm-eval TaskResult per model and task
        self._dynamic_outputs: dict[tuple[Any, ...], dict[int, tuple[int, ...]]] = {}  # greedy ids, dynamic cache
        self._kv_klds: dict[tuple[Any, ...], float] = {}  # decode KLD per model, cache configuration, request
        self._drafts: dict[tuple[Any, ...], Engine] = {}  # draft engines of speculative pairs
        self._server: Any = None  # the local server of the serving path (serving.LocalServer)
        self._server_engine: Any = None
        self._tp_engines: dict[tuple[Any, int], Any] = {}  # CPU tensor-parallel groups
        self._environment: dict[str, Any] | None = None
        self._unloadable: dict[ModelSpec, str] = {}  # models that failed to load: not retried per case
        self._checked_models: set[ModelSpec] = set()
        self.baselines = BaselineStore(settings.baselines)
        self.lab_cases = 1  # set at collection: the number of series divides the false-alarm budget
        self.rows: list[dict[str, Any]] = []
        self.verdict_rows: list[dict[str, Any]] = []
        self.written: list[Path] = []
        self.asv_summary: list[str] = []
        self.baseline_lines: list[str] = []  # what --inferlab-save-baseline saved and left out
        self.tradeoff_lines: list[str] = []
        self.curve_lines: list[str] = []

    @property
    def model_spec(self) -> ModelSpec | None:
        """The session's model (--inferlab-model) as a spec, or None when its name does not resolve."""
        try:
            return resolve_model(self.settings.model, seed=self.settings.seed)
        except LookupError:
            return None

    # ---- cached expensive objects -------------------------------------------------------
    def engine_for(self, model: str | ModelSpec, quant: QuantSpec | None = None) -> Engine:
        """The loaded model (cached per spec); with ``quant``, its quantized variant (cached too)."""
        spec = model if isinstance(model, ModelSpec) else resolve_model(model, seed=self.settings.seed)
        if quant is not None:
            spec = dataclasses.replace(spec, quant=quant)
        if spec in self._unloadable:
            raise ModelSourceError(self._unloadable[spec])
        if spec not in self._engines:
            self._apply_threads()
            if spec.quant is None:
                self.progress(f"loading {spec.name} on {self.device.torch_name} ...")
                self._engines[spec] = self._load(spec)
            else:
                from pytest_inferlab.optimizations.quant.engine import variant_engine

                self._evict_variants()
                self.progress(f"quantizing {spec.name} with {spec.quant.method} ...")
                self._engines[spec] = variant_engine(self.engine_for(spec.reference), spec)
        return self._engines[spec]

    def _load(self, spec: ModelSpec) -> Engine:
        """Load once; a failure is one line naming the model and why, remembered for the session (the
        library's traceback is chained, for -v and the log)."""
        try:
            self._check_once(spec)
            return load_engine("transformers", spec, self.device)
        except ModelSourceError as exc:
            self._unloadable[spec] = str(exc)
            raise
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            why = " ".join(str(exc).split())[:300] or type(exc).__name__  # the library's message, on one line
            self._unloadable[spec] = f"model {spec.name!r} ({spec.location}) could not be loaded: {why}"
            raise ModelSourceError(self._unloadable[spec]) from exc

    def _evict_variants(self) -> None:
        """Keep one quantized variant at a time (parametrized cases of a variant run together), so a
        case's peak RSS is the reference plus its own variant, not every variant built so far."""
        import gc

        for cached in [s for s in self._engines if s.quant is not None]:
            del self._engines[cached]
        gc.collect()

    def fidelity_of(self, engine: Engine) -> dict[str, float]:
        """Fidelity metrics of a quantized variant against its reference (reference log-probs once)."""
        spec = engine.info.model
        if spec.quant is None:
            return {}
        from pytest_inferlab.optimizations.quant.engine import fidelity_metrics, reference_log_probs

        if spec.reference not in self._references:
            self.progress(f"reference log-probabilities of {spec.name} on the fidelity text ...")
            self._references[spec.reference] = reference_log_probs(self.engine_for(spec.reference))
        return fidelity_metrics(self._references[spec.reference], engine)

    def evals_of(self, engine: Engine, tasks: Sequence[str]) -> dict[str, Any]:
        """lm-eval results of ``engine``'s model on ``tasks`` (once per model and task in a session;
        accuracy does not depend on the workload or batch size of the case)."""
        from pytest_inferlab.measure.evals import evaluate

        spec, limit = engine.info.model, self.settings.eval_limit
        missing = [t for t in tasks if (spec, t, limit) not in self._evals]
        if missing:
            self.progress(f"lm-eval {', '.join(missing)} on {spec.name}"
                          f"{' ' + spec.quant.method if spec.quant else ''} ...")
            done = evaluate(engine.model, engine.tokenizer, self.device.torch_name, missing, limit, self.settings.seed)
            self._evals.update({(spec, t, limit): result for t, result in done.items()})
        return {t: self._evals[(spec, t, limit)] for t in tasks}

    def dynamic_cache_outputs(self, engine: Engine, workload: WorkloadSpec, batch_size: int,
                              sampling: SamplingSpec) -> dict[int, tuple[int, ...]]:
        """Greedy output ids per request of ``engine``'s model with the default (dynamic) cache: what
        another cache configuration's tokens are compared with (run once per case shape, untimed)."""
        from pytest_inferlab.run.runner import run_round

        key = (engine.info.model, workload, batch_size, sampling)
        if key not in self._dynamic_outputs:
            plain = self.engine_for(engine.info.model)
            trace = run_round(plain, self.requests_for(plain, workload), batch_size, sampling)
            self._dynamic_outputs[key] = {r.index: r.output_ids for r in trace.requests if r.ok}
        return self._dynamic_outputs[key]

    def kv_decode_kld(self, engine: Engine, request: Request) -> float:
        """Decode-step KLD of ``engine``'s cache configuration on ``request`` (kv/fidelity.py), once
        per model, configuration and request: it does not depend on the case's batch size."""
        from pytest_inferlab.optimizations.kv.fidelity import kv_decode_kld

        key = (engine.info.model, engine.info.kv_cache, request.prompt_ids, request.max_new_tokens)
        if key not in self._kv_klds:
            self._kv_klds[key] = kv_decode_kld(engine, request.prompt_ids, request.max_new_tokens)
        return self._kv_klds[key]

    def speculative_engine(self, target: Engine, spec: SpeculativeSpec) -> Engine:
        """``target`` generating with the drafting method ``spec``; its draft model (if the method has
        one) is built once per session: the named model, quantized or truncated as the settings say."""
        from pytest_inferlab.optimizations.speculative import check_tokenizers, drafters

        drafter = drafters.get(spec.method)
        draft = self.draft_engine(target, spec) if drafter.uses_draft_model else None
        if draft is not None:
            check_tokenizers(spec, target.info.model.name, draft.tokenizer, target.tokenizer)
        return target.with_assist(spec, drafter.assist(spec, target, draft))

    def draft_engine(self, target: Engine, spec: SpeculativeSpec) -> Engine:
        from pytest_inferlab.optimizations.speculative import draft_model_name
        from pytest_inferlab.optimizations.speculative.draft import truncated_engine

        settings = dict(spec.settings)
        name = draft_model_name(spec, target.info.model.name)
        key = (target.info.model, name, settings.get("quant"), settings.get("layers"))
        if key not in self._drafts:
            base_spec = target.info.model.reference if name == target.info.model.name else \
                resolve_model(name, seed=self.settings.seed)
            quant = settings.get("quant")
            draft = self.engine_for(base_spec, quant=resolve_quant(quant) if quant else None)
            if settings.get("layers") is not None:
                draft = truncated_engine(draft, settings["layers"])
            self._drafts[key] = draft
        return self._drafts[key]

    def server(self) -> Any:
        """Start (once) the local server, unless --inferlab-server-url names one; returns the handle."""
        if self._server is None and self.settings.server_url is None:
            from pytest_inferlab.engines.local_server import LocalServer, plain_folder

            model = self.engine_for(self.settings.model)
            folder = plain_folder(model)
            self.progress(f"starting transformers serve {folder} on 127.0.0.1 ...")
            self._server = LocalServer(folder, device=self.device.torch_name).start()
            MEASURED_PIDS.add(self._server.process.pid)  # the server's CPU is the case's, not interference
            self.progress(f"server ready at {self._server.url} (pid {self._server.process.pid})")
        return self._server

    def tp_engine(self, model: Engine, world: int) -> Engine:
        """``model`` split over ``world`` CPU processes (started once per model and degree)."""
        from pytest_inferlab.engines.tensor_parallel import TensorParallelEngine
        from pytest_inferlab.engines.local_server import plain_folder

        key = (model.info.model, world)
        if key not in self._tp_engines:
            self.progress(f"starting a {world}-process tensor-parallel group for {model.info.model.name} ...")
            info = dataclasses.replace(model.info, engine="transformers-tp",
                                       facts={**model.info.facts, "tensor_parallel": world})
            self._tp_engines[key] = TensorParallelEngine(str(plain_folder(model)), info, world, model.encode,
                                                         threads=max(1, (self.settings.threads or 2) // world))
            MEASURED_PIDS.add(self._tp_engines[key].process.pid)
        return self._tp_engines[key]

    def stop_server(self) -> None:
        if self._server is not None:
            MEASURED_PIDS.discard(self._server.process.pid)
            self._server.stop()

    def server_engine(self) -> Engine:
        """The engine streaming to the session's server; a local server that died is an error."""
        from pytest_inferlab.engines.openai_engine import OpenAIServerEngine, probe
        from pytest_inferlab.engines.local_server import ServerError
        from pytest_inferlab.engines.sources import load_tokenizer

        local = self._server
        if local is not None and not local.alive():
            raise ServerError(f"the server (pid {local.process.pid}) exited with code {local.process.returncode}; "
                              f"its log ({local.log_path}):\n{local.log_tail()}")
        if self._server_engine is None:
            url = self.settings.server_url or local.url
            spec = resolve_model(self.settings.model, seed=self.settings.seed)
            if local is not None:
                served = str(local.folder)  # transformers serve pins the folder it was started with
            else:
                served = self.settings.server_model or (probe(url) or [None])[0] or spec.name
            self._server_engine = OpenAIServerEngine(url, served, spec, load_tokenizer(spec))
        return self._server_engine

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

    # ---- verdicts ---------------------------------------------------------------------------
    def judge(self, record: dict[str, Any], test_tolerance: dict[str, Any]) -> Judgement:
        """Verdicts of ``record`` against its stored baseline (saving happens at session end)."""
        invalid = self.invalid_reason(record["conditions"])
        try:
            baseline, same_machine = self.baselines.find(record["machine_id"], record["test_id"], record["spec_id"])
        except BaselineError as exc:
            return Judgement([], {"error": str(exc)}, False, invalid=invalid, error=str(exc))
        policies = policies_for(sorted(record["measurements"]), self.settings.tolerance, test_tolerance)
        timing = sum(p.kind == "timing" for p in policies.values())
        alpha = bonferroni_alpha(self.settings.alpha, self.lab_cases * max(1, timing))
        verdicts = []
        current_ref = record["conditions"].get("host_ref_s")
        for name, policy in policies.items():
            runs = baseline.runs(name) if baseline else []
            verdict = judge_run(policy, record["measurements"][name]["value"], current_ref, runs, alpha,
                                NoiseModel(), invalid)
            if verdict is not None:
                verdicts.append(verdict)
        if baseline is not None:
            verdicts += item_verdicts(record.get("evals") or {}, baseline.data.get("evals") or {}, alpha)
        gating = same_machine and not self.settings.no_gate and not self.settings.save_baseline
        reference = warning = None
        if baseline is not None:
            reference = {"path": str(baseline.path), "machine_id": baseline.machine_id,
                         "same_machine": same_machine, "gating": gating}
            if not same_machine:
                warning = (f"compared with the baseline of another machine fingerprint ({baseline.machine_id}, "
                           f"this one is {record['machine_id']}): reported, never gating")
        return Judgement(verdicts, reference, gating, warning, invalid)

    def invalid_reason(self, conditions: dict[str, Any]) -> str | None:
        """Why this case's timings cannot be trusted, or None."""
        share = conditions.get("other_cpu_share")
        if share is not None and share > self.settings.max_interference:
            return (f"other processes used {share:.0%} of the CPU during the case "
                    f"(limit {self.settings.max_interference:.0%}, --inferlab-max-interference)")
        if conditions.get("gpu_other_processes"):
            return f"other processes on the GPU during the case: pids {conditions['gpu_other_processes']}"
        shortfall = (conditions.get("load_generator") or {}).get("shortfall")
        if shortfall:
            return shortfall
        if conditions.get("xdist_worker"):
            return "measured beside other pytest-xdist workers (parallel cases share the machine)"
        return None

    # ---- output ---------------------------------------------------------------------------
    def write(self, record: Record) -> Path:
        path = self.store.write(record)
        if not self.written:  # the run's installed packages, once per run folder (xdist workers share it)
            self.store.write_packages(self.config.rootpath)
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
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.lab_cases = max(1, sum("lab" in getattr(item, "fixturenames", ()) for item in items))
        model_spec = self.model_spec
        checks = {  # parameters whose values this device (or model) may not run: skip now, with the reason
            "quantization": lambda value: unsupported_reason(resolve_quant(value), self.device, model_spec),
            "kv_cache": lambda value: unsupported_kv_reason(resolve_kv(value), self.device, model_spec),
            "batching": lambda value: unsupported_batching_reason(resolve_batching(value), self.device),
            "speculative": lambda value: self._speculative_check(resolve_speculative(value), model_spec),
            "model": self._model_check,
            "workload": lambda value: resolve_workload(value) and None,
            "load": lambda value: parse_load(value, self.settings.seed) and None,
        }
        for item in items:
            params = getattr(getattr(item, "callspec", None), "params", {})
            reasons = []
            for name in sorted(checks.keys() & params.keys()):
                try:
                    reasons.append(checks[name](params[name]))
                except (LookupError, ValueError) as exc:
                    raise pytest.UsageError(f"{item.nodeid}: parameter {name}={_shown(params[name])}: {exc}") from None
            if "kv_cache" in params and "batching" in params:
                reasons.append(unsupported_pairing(resolve_kv(params["kv_cache"]), resolve_batching(params["batching"])))
            if "speculative" in params and any(p in params for p in ("batching", "load")):
                raise pytest.UsageError(f"{item.nodeid}: speculative decoding runs one request at a time "
                                        "(transformers' assisted generation); do not combine it with batching or load")
            reason = next((r for r in reasons if r), None)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
        if self.settings.shard is not None:  # xdist workers each compute the same selection
            self._keep_shard(items)
        items[:] = grouped_by_variant(items)

    def _model_check(self, value: Any) -> None:
        """A model given as a test parameter must resolve and pass its source's check (once per value)."""
        self._check_once(value if isinstance(value, ModelSpec) else
                         resolve_model(value, seed=self.settings.seed, given_by=""))

    def _check_once(self, spec: ModelSpec) -> None:
        """The source's check of a model (a GGUF file's is a full header read): once per session."""
        if spec not in self._checked_models:
            check_model(spec)
            self._checked_models.add(spec)

    def _keep_shard(self, items: list[pytest.Item]) -> None:
        """--inferlab-shard=I/N: keep this shard's cases, report the rest as deselected."""
        from pytest_inferlab.plugin.shard import run_durations, select

        durations = run_durations(self.settings.shard_durations) if self.settings.shard_durations else {}
        chosen = select((item.nodeid for item in items), self.settings.shard, durations)
        dropped = [item for item in items if item.nodeid not in chosen]
        items[:] = [item for item in items if item.nodeid in chosen]
        if dropped:
            self.config.hook.pytest_deselected(items=dropped)
        self.lab_cases = max(1, sum("lab" in getattr(item, "fixturenames", ()) for item in items))

    def _speculative_check(self, spec: SpeculativeSpec, target: ModelSpec | None) -> str | None:
        """At collection: the draft model resolves, and shares the target's tokenizer where the
        method needs it (tokenizers only, not weights); a pairing that cannot work is an error."""
        from pytest_inferlab.engines.sources import load_tokenizer, tokenizer_key
        from pytest_inferlab.optimizations.speculative import SpeculativeConfigError, check_tokenizers, draft_model_name, drafters

        if not drafters.get(spec.method).uses_draft_model or target is None:
            return unsupported_speculative_reason(spec, self.device)
        name = draft_model_name(spec, target.name)
        try:
            draft = resolve_model(name, seed=self.settings.seed)
            if drafters.get(spec.method).same_tokenizer and tokenizer_key(draft) != tokenizer_key(target):
                check_tokenizers(spec, target.name, load_tokenizer(draft), load_tokenizer(target))
            if spec.method == "universal-draft" and tokenizer_key(draft) == tokenizer_key(target):
                return (f"speculative universal-draft: the draft {name!r} shares the target's tokenizer, and "
                        "transformers refuses universal assisted generation then; name a draft with another "
                        "tokenizer (settings model=...), or use method 'draft'")
        except (LookupError, SpeculativeConfigError) as exc:
            raise ValueError(str(exc)) from None
        return unsupported_speculative_reason(spec, self.device)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.rows.extend(value for key, value in report.user_properties if key == REPORT_KEY)
            for key, value in report.user_properties:
                if key == VERDICT_KEY:
                    self.verdict_rows.extend(value)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Temporary files of writers that died mid-write (a SIGKILL) are removed, never read."""
        if self.worker_id is None:
            remove_stale_temps(self.settings.results / "runs")
            remove_stale_temps(self.settings.baselines)

    def _save_baselines(self, session: pytest.Session, record_paths: list[Path]) -> None:
        """--inferlab-save-baseline: this run's valid records, all saved or none (as save-baselines)."""
        try:
            report = save_valid(self.baselines, [load_record(path) for path in record_paths])
        except (BaselineError, RecordError) as exc:
            self.baseline_lines = [f"baselines: nothing saved: {exc}"]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        self.baseline_lines = report.lines()

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """The quantization trade-off of the run, and --inferlab-asv: export this run's records (the
        controller does both once, for all workers)."""
        for group in self._tp_engines.values():
            group.stop()
        if self.worker_id is not None or not self.store.folder.is_dir():
            return
        from pytest_inferlab.outputs.asv_export import export, find_records
        from pytest_inferlab.measure.curves import curves_summary
        from pytest_inferlab.outputs.pareto import tradeoff_summary

        records = find_records(self.store.folder)
        if self.settings.save_baseline:
            self._save_baselines(session, records)
        table, png, why_not = tradeoff_summary(self.store.folder, records)
        if table:
            self.tradeoff_lines = table + [f"plot: {png}" if png else why_not or ""]
        table, png, why_not = curves_summary(self.store.folder, records)
        if table:
            self.curve_lines = table + [f"plot: {png}" if png else why_not or ""]
        if self.settings.asv is None:
            return

        summary = export(records, self.settings.asv, warn=lambda text: None)
        self.asv_summary = [f"{summary.line()} -> {self.settings.asv}"] + [f"  skipped {s}" for s in summary.skipped]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in self.asv_summary + self.baseline_lines:
            terminalreporter.write_line(line)
        if not self.rows:
            return
        terminalreporter.write_sep("=", "inferlab results")
        for line in format_table(self.rows):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"records: {self.store.folder}")
        if self.tradeoff_lines:
            terminalreporter.write_sep("=", "inferlab quantization trade-off (ratios to fp32 of the same batch)")
            for line in self.tradeoff_lines:
                terminalreporter.write_line(line)
        if self.curve_lines:
            terminalreporter.write_sep("=", "inferlab latency-throughput")
            for line in self.curve_lines:
                terminalreporter.write_line(line)
        if self.verdict_rows:
            terminalreporter.write_sep("=", "inferlab verdicts")
            for line in format_verdict_summary(self.verdict_rows):
                terminalreporter.write_line(line)


class XdistHooks:
    """Hands the controller's run id to every worker so one run's records share one folder."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["inferlab_run_id"] = self.run_id
