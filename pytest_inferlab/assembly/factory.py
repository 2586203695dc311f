"""The engine factory: builds every engine a run uses, caches it by spec, and closes what it started.

Loaded models, quantized variants (one at a time), drafting targets and their draft models,
tensor-parallel groups and the local server all come from here, so the session never holds an
engine it cannot stop.
"""

from __future__ import annotations

import dataclasses
import time
from urllib.parse import urlsplit
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pytest_inferlab.device import Device
from pytest_inferlab.engines.base import Engine, load_engine
from pytest_inferlab.engines.model_checks import ModelSourceError
from pytest_inferlab.engines.sources import check_model, resolve_model
from pytest_inferlab.ground.child import Progress
from pytest_inferlab.ground.memory import return_freed_memory
from pytest_inferlab.ground.progress import StepProgress
from pytest_inferlab.ground.processes import LOOPBACK, MEASURED_PIDS, loopback_server_pid
from pytest_inferlab.specs.core import ModelSpec, QuantSpec, SpeculativeSpec
from pytest_inferlab.specs.parallel import ParallelSpec


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """What building engines reads of a run's options (no pytest below the plugin)."""

    model: str = "smollm2-135m"
    seed: int = 0
    threads: int | None = None
    server_url: str | None = None
    server: str = "transformers"  # the kind of local server
    server_model: str | None = None
    model_given: bool = False  # --inferlab-model set by the user (command line or ini), not defaulted
    load_processes: int = 1


def build_model_engine(spec: ModelSpec, device: Device, progress: Progress | None = None,
                       reference: Engine | None = None) -> Engine:
    """The model ``spec`` names, loaded; with ``spec.quant``, its variant (of ``reference``, loaded here
    when the method needs it and it is not given). The one way an in-process model engine is built: by
    the factory for a run, and by a preparation child (lm-eval, reference log-probabilities) that
    rebuilds the same model from its spec."""
    if spec.quant is None:
        return load_engine("transformers", spec, device)
    from pytest_inferlab.optimizations.quant.engine import own_variant_engine, variant_engine

    own = own_variant_engine(spec, device, progress)
    if own is not None:
        return own
    base = reference if reference is not None else load_engine("transformers", spec.reference, device)
    return variant_engine(base, spec, progress)


class ModelChecks:
    """The source's check of a model (a GGUF file's is a full header read), once per session."""

    def __init__(self) -> None:
        self._checked: set[ModelSpec] = set()

    def check_once(self, spec: ModelSpec) -> None:
        if spec not in self._checked:
            check_model(spec)
            self._checked.add(spec)


class EngineFactory:
    """Engines of one run, cached by what defines them; ``close`` stops every process it started."""

    def __init__(self, settings: EngineSettings, device: Device, checks: ModelChecks, say: Callable[..., None]) -> None:
        self.settings = settings
        self.device = device
        self.checks = checks
        self.say = say
        self._engines: dict[ModelSpec, Engine] = {}
        self._unloadable: dict[ModelSpec, str] = {}  # models that failed to load: not retried per case
        self._drafts: dict[tuple[Any, ...], Engine] = {}  # draft engines of speculative pairs
        self._tensor_parallel: dict[tuple[ModelSpec, int], Engine] = {}  # CPU tensor-parallel groups
        self._vllm: dict[tuple[ModelSpec, ParallelSpec], Engine] = {}  # vLLM's in-process engines (GPU)
        self._server: Any = None  # the local server of the serving path (local_server.LocalServer)
        self._server_engine: Engine | None = None
        self._beside: int | None = None  # the pid of someone's server on this machine (counted as measured)

    def resolve(self, name: str | ModelSpec, given_by: str = "--inferlab-model") -> ModelSpec:
        return name if isinstance(name, ModelSpec) else resolve_model(name, seed=self.settings.seed, given_by=given_by)

    # ---- in-process models -------------------------------------------------------------
    def engine_for(self, model: str | ModelSpec, quant: QuantSpec | None = None) -> Engine:
        """The loaded model (cached per spec); with ``quant``, its quantized variant (cached too)."""
        spec = self.resolve(model)
        if quant is not None:
            spec = dataclasses.replace(spec, quant=quant)
        if spec in self._unloadable:
            raise ModelSourceError(self._unloadable[spec])
        if spec not in self._engines:
            self._apply_threads()
            started = time.monotonic()
            if spec.quant is None:
                self.say(f"loading {spec.name} on {self.device.torch_name} ...")
                self._engines[spec] = self._load(spec)
                self.say(f"loaded {spec.name} in {time.monotonic() - started:.1f} s")
            else:
                reference = self.engine_for(spec.reference)
                self._evict_variants()
                started = time.monotonic()
                self.say(f"quantizing {spec.name} with {spec.quant.method} ...")
                progress = StepProgress(f"{spec.quant.method} of {spec.name}", lambda text: self.say(text, True))
                self._engines[spec] = build_model_engine(spec, self.device, progress, reference)
                self.say(f"quantized {spec.name} with {spec.quant.method} in {time.monotonic() - started:.1f} s")
        return self._engines[spec]

    def _load(self, spec: ModelSpec) -> Engine:
        """Load once; a failure is one line naming the model and why, remembered for the session (the
        library's traceback is chained, for -v and the log)."""
        try:
            self.checks.check_once(spec)
            return build_model_engine(spec, self.device)
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
        self.release_variants(keep=())

    def release_variants(self, keep: Iterable[QuantSpec]) -> None:
        """Drop the quantized variants (and drafts) whose method is not in ``keep``, and hand their memory
        back to the system: the next case's RSS starts from the same place whatever ran before it
        (conditions.process says what its process still holds)."""
        kept = set(keep)
        dropped = [s for s in self._engines if s.quant is not None and s.quant not in kept]
        drafts = [key for key, draft in self._drafts.items() if draft.info.model.quant is not None and
                  draft.info.model.quant not in kept]
        # dropped, not closed: a case may still hold one (a draft rung evicts its drafting target's rung
        # while both serve the case); whatever no one holds is freed with its last reference
        for spec in dropped:
            del self._engines[spec]
        for key in drafts:
            del self._drafts[key]
        if dropped or drafts:
            return_freed_memory()

    def _apply_threads(self) -> None:
        import torch

        if self.settings.threads is not None and torch.get_num_threads() != self.settings.threads:
            torch.set_num_threads(self.settings.threads)

    # ---- speculative pairs -----------------------------------------------------------------
    def speculative_engine(self, target: Engine, spec: SpeculativeSpec) -> Engine:
        """``target`` generating with the drafting method ``spec``; its draft model (if the method has
        one) is built once per session: the named model, quantized or truncated as the settings say."""
        from pytest_inferlab.optimizations.speculative import check_tokenizers, drafters

        drafter = drafters.get(spec.method)
        draft = self.draft_engine(target, spec) if drafter.needs.draft_model else None
        if draft is not None:
            check_tokenizers(spec, target.info.model.name, draft.tokenizer, target.tokenizer)
        return target.drafting_with(spec, drafter, draft)

    def draft_engine(self, target: Engine, spec: SpeculativeSpec) -> Engine:
        from pytest_inferlab.optimizations.quant import resolve_quant
        from pytest_inferlab.optimizations.speculative import draft_model_name
        from pytest_inferlab.optimizations.speculative.draft import truncated_engine

        settings = dict(spec.settings)
        name = draft_model_name(spec, target.info.model.name)
        key = (target.info.model, name, settings.get("quant"), settings.get("layers"))
        if key not in self._drafts:
            base = target.info.model.reference if name == target.info.model.name else self.resolve(name)
            quant = settings.get("quant")
            draft = self.engine_for(base, quant=resolve_quant(quant) if quant else None)
            if settings.get("layers") is not None:
                draft = truncated_engine(draft, settings["layers"])
            self._drafts[key] = draft
        return self._drafts[key]

    # ---- processes the run starts ----------------------------------------------------------
    def tensor_parallel_engine(self, model: Engine, world: int) -> Engine:
        """``model`` split over ``world`` CPU processes (started once per model and degree)."""
        from pytest_inferlab.engines.local_server import plain_folder
        from pytest_inferlab.engines.tensor_parallel import TensorParallelEngine

        key = (model.info.model, world)
        if key not in self._tensor_parallel:
            self.say(f"starting a {world}-process tensor-parallel group for {model.info.model.name} ...")
            info = dataclasses.replace(model.info, engine="transformers-tp",
                                       facts={**model.info.facts, "tensor_parallel": world})
            group = TensorParallelEngine(str(plain_folder(model)), info, world, model.encode,
                                         threads=max(1, (self.settings.threads or 2) // world))
            MEASURED_PIDS.add(group.process.pid)
            self._tensor_parallel[key] = group
        return self._tensor_parallel[key]

    def vllm_engine(self, parallel: ParallelSpec) -> Engine:
        """The run's model in vLLM's in-process engine with the ``parallel`` layout (built once per
        layout; closed with the factory). RuntimeError naming why where vLLM cannot run."""
        from pytest_inferlab.engines.vllm_engine import VllmEngine

        key = (self.resolve(self.settings.model), parallel)
        if key not in self._vllm:
            self.say(f"loading {key[0].name} in vLLM ({parallel.label}) ...")
            self._vllm[key] = VllmEngine.load(key[0], self.device, parallel=parallel, seed=self.settings.seed)
        return self._vllm[key]

    def server(self) -> Any:
        """Start (once) the local server, unless --inferlab-server-url names one; returns the handle."""
        if self._server is None and self.settings.server_url is None:
            from pytest_inferlab.engines.local_server import LocalServer, ServerUnsupported, server_kinds

            kind = server_kinds.get(self.settings.server)
            model = self.engine_for(self.settings.model)
            reason = kind.unsupported(model, self.device.torch_name)
            if reason:
                raise ServerUnsupported(reason)
            served = kind.served(model)
            self.say(f"starting the {self.settings.server} server on {served} at 127.0.0.1 ...")
            self._server = LocalServer(served, self.settings.server, device=self.device.torch_name,
                                       threads=self.settings.threads or 2).start()
            MEASURED_PIDS.add(self._server.process.pid)  # the server's CPU is the case's, not interference
            self.say(f"server ready at {self._server.url} (pid {self._server.process.pid})")
        return self._server

    def server_engine(self) -> Engine:
        """The engine streaming to the session's server; a local server that died is an error."""
        from pytest_inferlab.engines.local_server import ServerError
        from pytest_inferlab.engines.openai_engine import OpenAIServerEngine, json_poster, probe
        from pytest_inferlab.engines.served_model import served_model, tokenize_check
        from pytest_inferlab.engines.sources import load_tokenizer

        local = self._server
        if local is not None and not local.alive():
            raise ServerError(f"the server (pid {local.process.pid}) exited with code {local.process.returncode}; "
                              f"its log ({local.log_path}):\n{local.log_tail()}")
        if self._server_engine is None:
            url = self.settings.server_url or local.url
            checked = None
            if local is not None:  # started here on the run's model: its folder or file is what it serves
                spec, served = self.resolve(self.settings.model), local.served
                tokenizer = load_tokenizer(spec)
            else:  # someone's server: encoded with the served model's tokenizer, checked where it tokenizes
                match = served_model(url, probe(url), self.settings.server_model, self.settings.model,
                                     self.settings.model_given, self.settings.seed)
                spec, served, tokenizer = match.tokenizer_model, match.served, load_tokenizer(match.tokenizer_model)
                checked = {"model": spec.name, "from": match.tokenizer_from,
                           "tokenize_check": tokenize_check(json_poster(url), match, tokenizer)}
            self._server_engine = OpenAIServerEngine(url, served, spec, tokenizer, processes=self.settings.load_processes,
                                                     server_facts=local.facts if local is not None else
                                                     self._beside_us(url), tokenizer_facts=checked)
        return self._server_engine

    def _beside_us(self, url: str) -> dict[str, Any]:
        """Someone's server: on this machine (loopback), its process's CPU is the case's own, as a
        server started here is (else the interference probe would void every case it serves)."""
        pid = loopback_server_pid(url)
        if pid is not None:
            MEASURED_PIDS.add(pid)
            self._beside = pid
            return {"where": "this machine (loopback)", "pid": pid, "cpu": "counted as the case's own"}
        return {"where": "loopback, its process not visible to this user: its CPU counts as interference"
                if urlsplit(url).hostname in LOOPBACK else "another machine"}

    def stop_server(self) -> None:
        if self._server_engine is not None:
            self._server_engine.close()  # its load-generator processes
        if self._beside is not None:
            MEASURED_PIDS.discard(self._beside)
        if self._server is not None:
            MEASURED_PIDS.discard(self._server.process.pid)
            self._server.stop()

    def close(self) -> None:
        """Close every engine it built: the tensor-parallel groups, vLLM's engines, the local server and
        its client, the in-process models and drafts (idempotent)."""
        for engine in [*self._tensor_parallel.values(), *self._vllm.values(), *self._drafts.values(),
                       *self._engines.values()]:
            engine.close()
        self.stop_server()
