"""Task accuracy through lm-eval, offline: the in-memory model (quantized or not) through lm-eval's
HF wrapper, the project's tasks from files shipped in ``data/tasks`` (``TaskManager(include_path=)``).

Shipped tasks: ``inferlab_mc`` (120 four-way multiple-choice items written for this project) and
``inferlab_ppl`` (rolling perplexity over the paragraphs of the shipped report text). Any other
lm-eval task name works when its data is already in the local Hugging Face cache (runs are offline).

Each result keeps per-item correctness (multiple-choice tasks), so two variants, or a variant and
its baseline, can be compared item by item (McNemar, ``verdict.judge_items``).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import math
from dataclasses import dataclass
from typing import Any, Sequence

from pytest_inferlab.engines.in_process import hf_lm
from pytest_inferlab.ground.child import Progress, Report, run_child
from pytest_inferlab.measure.catalog import EVAL_DIRECTIONS
from pytest_inferlab.specs.core import ModelSpec, spec_dict

SHIPPED_TASKS = ("inferlab_mc", "inferlab_ppl")
DEFAULT_TASKS = SHIPPED_TASKS
INSTALL_HINT = "lm-eval is not installed: pip install 'pytest-inferlab[eval]' (lm-eval==0.4.13)"


class EvalError(RuntimeError):
    """A task that cannot be evaluated; the message names it and what to do."""


@dataclass(frozen=True, slots=True)
class TaskResult:
    """One task's scores and, for per-item tasks, which items the model got right (doc order)."""

    task: str
    metrics: dict[str, float]
    items: tuple[bool, ...] | None
    limit: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "items": list(self.items) if self.items is not None else None,
                "limit": self.limit}

    @classmethod
    def from_dict(cls, task: str, data: dict[str, Any]) -> "TaskResult":
        items = data.get("items")
        return cls(task, dict(data["metrics"]), tuple(items) if items is not None else None, data.get("limit"))


def tasks_dir() -> str:
    return str(importlib.resources.files("pytest_inferlab") / "data" / "tasks")


def unavailable_reason() -> str | None:
    return INSTALL_HINT if importlib.util.find_spec("lm_eval") is None else None


def evaluate(model: Any, tokenizer: Any, device: str, tasks: Sequence[str], limit: int | None = None,
             seed: int = 0, batch_size: int = 8) -> dict[str, TaskResult]:
    """Scores of the torch ``model`` on ``tasks`` (at most ``limit`` items each), with per-item correctness."""
    return evaluate_lm(hf_lm(model, tokenizer, device, batch_size), tasks, limit, seed)


def evaluate_in_child(model: ModelSpec, device: str, tasks: Sequence[str], limit: int | None, seed: int,
                      progress: Progress | None = None) -> dict[str, TaskResult]:
    """lm-eval on ``model`` in a child process (ground/child.py), which rebuilds the model from its spec:
    lm-eval's import alone adds ~200 MB to a process's RSS for good, and no case should carry that."""
    import torch

    job = {"model": spec_dict(model), "device": device, "threads": torch.get_num_threads(), "tasks": list(tasks),
           "limit": limit, "seed": seed}
    found = run_child(f"{__name__}:evaluate_job", job, what=f"lm-eval {', '.join(tasks)} on {model.name} (child process)",
                      progress=progress)
    return {task: TaskResult.from_dict(task, data) for task, data in found.items()}


def evaluate_job(job: dict[str, Any], report: Report) -> dict[str, Any]:
    """In the child: the model rebuilt as the run built it, scored item by item."""
    import torch

    from pytest_inferlab.device import device_named
    from pytest_inferlab.assembly.factory import build_model_engine

    torch.set_num_threads(job["threads"])
    engine = build_model_engine(ModelSpec.from_dict(job["model"]), device_named(job["device"]))
    with engine.lm_eval_model(job["device"]) as lm:
        done = evaluate_lm(reporting_lm(lm, report), job["tasks"], job["limit"], job["seed"])
    return {task: result.to_dict() for task, result in done.items()}


def reporting_lm(inner: Any, report: Report, chunk: int = 64) -> Any:
    """``inner`` (an lm-eval LM) answering its requests ``chunk`` at a time, reporting how many are done."""
    from lm_eval.api.model import LM

    class Reporting(LM):
        def __getattr__(self, name: str) -> Any:  # whatever else lm-eval asks of the model
            return getattr(inner, name)

        def _chunked(self, call: Any, requests: list[Any], what: str) -> list[Any]:
            out: list[Any] = []
            report(0, len(requests), what)
            for start in range(0, len(requests), chunk):
                out += call(requests[start:start + chunk])
                report(len(out), len(requests), what)
            return out

        def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
            return self._chunked(inner.loglikelihood, requests, "loglikelihood request")

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
            return self._chunked(inner.loglikelihood_rolling, requests, "rolling loglikelihood request")

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
            return self._chunked(inner.generate_until, requests, "generation request")

    return Reporting()


def evaluate_lm(lm: Any, tasks: Sequence[str], limit: int | None = None, seed: int = 0) -> dict[str, TaskResult]:
    """Scores of the lm-eval model ``lm`` (any engine's adapter: ``Engine.lm_eval_model``)."""
    reason = unavailable_reason()
    if reason:
        raise EvalError(reason)
    import lm_eval
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=tasks_dir())
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise EvalError(f"lm-eval task(s) {unknown} unknown; shipped: {', '.join(SHIPPED_TASKS)} "
                        "(or any lm-eval task whose data is in the local Hugging Face cache)")
    try:
        out = lm_eval.simple_evaluate(model=lm, tasks=list(tasks), task_manager=manager, limit=limit,
                                      log_samples=True, bootstrap_iters=0, random_seed=seed,
                                      numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)
    except (ConnectionError, OSError) as exc:  # a hub task whose data is not cached: we are offline
        raise EvalError(f"lm-eval task(s) {list(tasks)}: data not available offline ({exc}); "
                        f"use the shipped tasks {', '.join(SHIPPED_TASKS)}") from None
    return {task: _result(task, out["results"][task], out["samples"].get(task, []), limit) for task in tasks}


def _result(task: str, scores: dict[str, Any], samples: list[dict[str, Any]], limit: int | None) -> TaskResult:
    metrics = {}
    for key, value in scores.items():
        name, _, _filter = key.partition(",")
        if name in EVAL_DIRECTIONS and isinstance(value, (int, float)) and math.isfinite(value):
            metrics[name] = float(value)
    ordered = sorted(samples, key=lambda s: s["doc_id"])
    items = tuple(bool(s["acc"]) for s in ordered) if ordered and "acc" in ordered[0] else None
    return TaskResult(task, metrics, items, limit)


def record_metrics(results: dict[str, TaskResult]) -> dict[str, float]:
    """Record metric name -> value: ``<task>.<metric>``, e.g. ``inferlab_mc.acc`` (its direction: the
    catalog's, from the lm-eval metric name)."""
    return {f"{task}.{name}": value
            for task, result in results.items() for name, value in result.metrics.items()}
