"""Reference outputs a case is compared with, computed once per run and cached by what they depend on.

A quantized variant's fidelity needs its unquantized model's log-probabilities; a KV-cache
configuration's token agreement needs the dynamic cache's greedy outputs; accuracy needs lm-eval's
scores of the model (not of the case's workload or batch size). None of these is timed.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from pytest_inferlab.engines.base import Engine
from pytest_inferlab.run.trace import Request
from pytest_inferlab.run.workloads import materialize
from pytest_inferlab.specs.core import ModelSpec, SamplingSpec, WorkloadSpec


class ReferenceCache:
    """``engine_for``: the factory's loader (references are measured on the unoptimized model)."""

    def __init__(self, engine_for: Callable[[ModelSpec], Engine], device_name: str, eval_limit: int | None,
                 seed: int, say: Callable[[str], None]) -> None:
        self.engine_for = engine_for
        self.device_name = device_name
        self.eval_limit = eval_limit
        self.seed = seed
        self.say = say
        self._requests: dict[tuple[ModelSpec, WorkloadSpec], list[Request]] = {}
        self._log_probs: dict[ModelSpec, Any] = {}  # fidelity reference log-probs per unquantized model
        self._evals: dict[tuple[ModelSpec, str, int | None], Any] = {}  # lm-eval TaskResult per model and task
        self._dynamic_outputs: dict[tuple[Any, ...], dict[int, tuple[int, ...]]] = {}  # greedy ids, dynamic cache
        self._kv_klds: dict[tuple[Any, ...], float] = {}  # decode KLD per model, cache configuration, request

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
        from pytest_inferlab.optimizations.quant.engine import fidelity_metrics, reference_log_probs

        if spec.reference not in self._log_probs:
            self.say(f"reference log-probabilities of {spec.name} on the fidelity text ...")
            self._log_probs[spec.reference] = reference_log_probs(self.engine_for(spec.reference))
        return fidelity_metrics(self._log_probs[spec.reference], engine)

    def evals_of(self, engine: Engine, tasks: Sequence[str]) -> dict[str, Any]:
        """lm-eval results of ``engine``'s model on ``tasks`` (once per model and task in a session;
        accuracy does not depend on the workload or batch size of the case)."""
        from pytest_inferlab.measure.evals import evaluate_lm

        spec, limit = engine.info.model, self.eval_limit
        missing = [t for t in tasks if (spec, t, limit) not in self._evals]
        if missing:
            self.say(f"lm-eval {', '.join(missing)} on {spec.name}{' ' + spec.quant.method if spec.quant else ''} ...")
            with engine.lm_eval_model(self.device_name) as lm:
                done = evaluate_lm(lm, missing, limit, self.seed)
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
        """Decode-step KLD of ``engine``'s cache configuration on ``request`` (optimizations/kv/fidelity.py),
        once per model, configuration and request: it does not depend on the case's batch size."""
        from pytest_inferlab.optimizations.kv.fidelity import kv_decode_kld

        key = (engine.info.model, engine.info.kv_cache, request.prompt_ids, request.max_new_tokens)
        if key not in self._kv_klds:
            self._kv_klds[key] = kv_decode_kld(engine, request.prompt_ids, request.max_new_tokens)
        return self._kv_klds[key]
