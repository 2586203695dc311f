"""Reference outputs a case is compared with, computed once per run and cached by what they depend on.

A quantized variant's fidelity needs its unquantized model's log-probabilities; a KV-cache
configuration's token agreement needs the dynamic cache's greedy outputs; accuracy needs lm-eval's
scores of the model (not of the case's workload or batch size). None of these is timed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from pytest_inferlab.engines.base import Engine
from pytest_inferlab.engines.sources import cache_dir, weights_identity
from pytest_inferlab.ground.jsonio import publish_folder, write_json_replace
from pytest_inferlab.ground.progress import StepProgress
from pytest_inferlab.optimizations.kv import unsupported_pairing
from pytest_inferlab.ground.trace import Request, RoundTrace
from pytest_inferlab.run.workloads import materialize
from pytest_inferlab.specs.core import ModelSpec, SamplingSpec, WorkloadSpec, stable_id


@dataclass(frozen=True, slots=True)
class SequentialReference:
    """Greedy outputs of one request at a time (a session's later turns built from its own answers),
    and the prompt each request had: what batching that claims to change nothing is compared with."""

    outputs: dict[int, tuple[int, ...]]
    prompts: dict[int, tuple[int, ...]]


def sequential_greedy(engine: Engine, requests: Sequence[Request], sampling: SamplingSpec) -> SequentialReference:
    """Every request alone on ``engine`` (batch of one, no prefix reuse), in order; a session's next turn
    follows its answer, as a closed loop of one client would send it."""
    outputs: dict[int, tuple[int, ...]] = {}
    prompts: dict[int, tuple[int, ...]] = {}
    queue = list(requests)
    while queue:
        request = queue.pop(0)
        [trace] = engine.generate([request], sampling)
        prompts[request.index] = tuple(request.prompt_ids)
        if not trace.ok:
            continue
        outputs[request.index] = trace.output_ids
        follow = request.next_turn(trace.output_ids)
        if follow is not None:
            queue.insert(0, follow[0])
    return SequentialReference(outputs, prompts)


def kept_key(model: ModelSpec, what: Mapping[str, Any]) -> str | None:
    """The lab cache's key of something computed from ``model``'s weights (its variant's method and the
    libraries that ran it included), or None where the weights cannot be named without reading them."""
    weights = weights_identity(model.reference)
    if weights is None:
        return None
    libraries = {}
    for name in ("gptqmodel", "torchao", "llama-cpp-python", "lm-eval", "optimum-quanto", "bitsandbytes"):
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return stable_id({"weights": weights, "quant": model.quant.to_dict() if model.quant else None,
                      "libraries": libraries, **what})


@functools.lru_cache(maxsize=8)
def data_digest(relative: str) -> str:
    """sha256 of a file or folder shipped in the package (the text or tasks a cached result used)."""
    root = importlib.resources.files("pytest_inferlab") / relative
    files = sorted(Path(str(root)).rglob("*")) if Path(str(root)).is_dir() else [Path(str(root))]
    digest = hashlib.sha256()
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


class ReferenceCache:
    """``engine_for``: the factory's loader (references are measured on the unoptimized model)."""

    def __init__(self, engine_for: Callable[[ModelSpec], Engine], device_name: str, eval_limit: int | None,
                 seed: int, say: Callable[..., None]) -> None:
        self.engine_for = engine_for
        self.device_name = device_name
        self.eval_limit = eval_limit
        self.seed = seed
        self.say = say
        self._requests: dict[tuple[ModelSpec, WorkloadSpec], list[Request]] = {}
        self._log_probs: dict[ModelSpec, Any] = {}  # fidelity reference log-probs per unquantized model
        self._fidelity: dict[ModelSpec, dict[str, float]] = {}  # per variant: its weights' figures, once
        self._evals: dict[tuple[ModelSpec, str, int | None], Any] = {}  # lm-eval TaskResult per model and task
        self._dynamic_outputs: dict[tuple[Any, ...], dict[int, tuple[int, ...]]] = {}  # greedy ids, dynamic cache
        self._kv_klds: dict[tuple[Any, ...], float] = {}  # decode KLD per model, cache configuration, request
        self._sequential: dict[tuple[Any, ...], SequentialReference] = {}  # one request at a time, greedy
        self.in_process: list[str] = []  # preparation that ran in this process (conditions.process)
        self._files: tempfile.TemporaryDirectory | None = None  # stored log-probs, this run only (close())

    def requests_for(self, engine: Engine, workload: WorkloadSpec) -> list[Request]:
        """The workload's requests tokenized by ``engine`` (once per model and workload)."""
        key = (engine.info.model, workload)
        if key not in self._requests:
            self._requests[key] = materialize(workload, engine.encode, engine.info.vocab_size)
        return self._requests[key]

    def fidelity_of(self, engine: Engine) -> dict[str, float]:
        """Fidelity metrics of a quantized variant against its reference (reference log-probs once)."""
        spec = engine.info.model
        if spec.quant is None:
            return {}
        from pytest_inferlab.measure.fidelity_text import fidelity_metrics, reference_log_probs

        if spec.reference not in self._log_probs:
            self.say(f"reference log-probabilities of {spec.name} on the fidelity text ...")
            reference = self.engine_for(spec.reference)
            if reference.rebuild is not None:  # computed in a child, kept in a file: never in a case's RSS
                self._log_probs[spec.reference] = self._stored_log_probs(reference.rebuild)
            else:
                self.in_process.append(f"reference log-probabilities of {spec.name}")
                self._log_probs[spec.reference] = reference_log_probs(reference)
        if spec not in self._fidelity:  # a variant's weights score the same every time (inferlab tune asks first)
            self._fidelity[spec] = fidelity_metrics(self._log_probs[spec.reference], engine)
        return dict(self._fidelity[spec])

    def _stored_log_probs(self, model: ModelSpec) -> Any:
        """The reference's log-probabilities in a file: from the lab's cache when these weights were
        scored before (keyed by weights_identity), else computed by a child and kept there."""
        from pytest_inferlab.measure.fidelity import StoredLogProbs
        from pytest_inferlab.measure.fidelity_text import FIDELITY_TEXT, FIDELITY_WINDOW, stored_reference_log_probs

        key = kept_key(model, {"log_probs": FIDELITY_WINDOW, "text": data_digest(FIDELITY_TEXT)})
        folder = cache_dir() / "log-probs" / key if key else None
        if folder is not None and (folder / "windows.json").is_file():
            self.say(f"reference log-probabilities of {model.name}: from the cache ({folder})")
            return StoredLogProbs(json.loads((folder / "windows.json").read_text()), folder / "values.pt")
        progress = StepProgress(f"reference log-probabilities of {model.name}", lambda text: self.say(text, True))
        if folder is None:
            return stored_reference_log_probs(model, self.device_name, self._folder() / f"{model.spec_id}.pt", progress)

        def fill(temp: Path) -> None:
            stored = stored_reference_log_probs(model, self.device_name, temp / "values.pt", progress)
            (temp / "windows.json").write_text(json.dumps(stored.window_ids))

        publish_folder(folder, fill)
        return StoredLogProbs(json.loads((folder / "windows.json").read_text()), folder / "values.pt")

    def _evaluate(self, engine: Engine, tasks: Sequence[str], label: str) -> dict[str, Any]:
        """lm-eval results of ``engine``'s model: from the lab's cache when these weights were scored on
        these tasks before, else from a child process (kept in the cache), else in this process."""
        from pytest_inferlab.measure.evals import TaskResult, evaluate_in_child, evaluate_lm

        if engine.rebuild is None:  # only this process has the model (the record says so: conditions.process)
            self.in_process.append(f"lm-eval {', '.join(tasks)} on {label}")
            with engine.lm_eval_model(self.device_name) as lm:
                return evaluate_lm(lm, tasks, self.eval_limit, self.seed)
        key = kept_key(engine.rebuild, {"tasks": sorted(tasks), "limit": self.eval_limit, "seed": self.seed,
                                        "device": self.device_name, "task_files": data_digest("data/tasks")})
        path = cache_dir() / "evals" / f"{key}.json" if key else None
        if path is not None and path.is_file():
            self.say(f"lm-eval {', '.join(tasks)} on {label}: from the cache ({path})")
            return {task: TaskResult.from_dict(task, data) for task, data in json.loads(path.read_text()).items()}
        progress = StepProgress(f"lm-eval on {label}", lambda text: self.say(text, True))
        done = evaluate_in_child(engine.rebuild, self.device_name, tasks, self.eval_limit, self.seed, progress)
        if path is not None:
            write_json_replace(path, {task: result.to_dict() for task, result in done.items()})
        return done

    def _folder(self) -> Path:
        if self._files is None:
            self._files = tempfile.TemporaryDirectory(prefix="inferlab-references-")
        return Path(self._files.name)

    def close(self) -> None:
        """Remove the files this run's references were kept in (the session's end)."""
        if self._files is not None:
            self._files.cleanup()
            self._files = None
        self._log_probs.clear()

    def evals_of(self, engine: Engine, tasks: Sequence[str]) -> dict[str, Any]:
        """lm-eval results of ``engine``'s model on ``tasks`` (once per model and task in a session;
        accuracy does not depend on the workload or batch size of the case)."""
        spec, limit = engine.info.model, self.eval_limit
        missing = [t for t in tasks if (spec, t, limit) not in self._evals]
        if missing:
            label = f"{spec.name}{' ' + spec.quant.method if spec.quant else ''}"
            self.say(f"lm-eval {', '.join(missing)} on {label} ...")
            done = self._evaluate(engine, missing, label)
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

    def sequential_outputs(self, engine: Engine, workload: WorkloadSpec, sampling: SamplingSpec) -> SequentialReference:
        """``engine``'s greedy outputs of the workload one request at a time (untimed; once per engine
        configuration, workload and sampling): the reference of a batching's lossless claim. A cache only
        continuous batching has (paged) has no one-at-a-time decoding: the model's default cache is its reference."""
        if engine.info.kv_cache is not None and unsupported_pairing(engine.info.kv_cache, None):
            engine = self.engine_for(engine.info.model)
        key = (engine.info.model, engine.info.kv_cache, workload, sampling)
        if key not in self._sequential:
            self.say(f"sequential greedy outputs of {engine.info.model.name} on {workload.name} (exactness reference) ...")
            self._sequential[key] = sequential_greedy(engine, self.requests_for(engine, workload), sampling)
        return self._sequential[key]

    def remember_sequential(self, engine: Engine, workload: WorkloadSpec, sampling: SamplingSpec,
                            round_: RoundTrace) -> None:
        """A case that decoded one request at a time already has the sequential outputs: kept, so a
        batching case of the same engine and workload need not decode them again."""
        key = (engine.info.model, engine.info.kv_cache, workload, sampling)
        if key not in self._sequential and all(r.ok for r in round_.requests):
            prompts = {r.index: r.prompt_ids for r in self.requests_for(engine, workload)}
            if set(prompts) == {r.index for r in round_.requests}:  # no session turns built from answers
                self._sequential[key] = SequentialReference({r.index: r.output_ids for r in round_.requests}, prompts)

    def kv_decode_kld(self, engine: Engine, request: Request) -> float:
        """Decode-step KLD of ``engine``'s cache configuration on ``request`` (optimizations/kv/fidelity.py),
        once per model, configuration and request: it does not depend on the case's batch size."""
        from pytest_inferlab.optimizations.kv.fidelity import kv_decode_kld

        key = (engine.info.model, engine.info.kv_cache, request.prompt_ids, request.max_new_tokens)
        if key not in self._kv_klds:
            self._kv_klds[key] = kv_decode_kld(engine, request.prompt_ids, request.max_new_tokens)
        return self._kv_klds[key]
