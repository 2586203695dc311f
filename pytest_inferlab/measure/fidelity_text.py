"""The shipped fidelity text and what is measured on it: its windows, the reference's log-probabilities
(in memory, or computed in a child process into a file) and the record's fidelity metrics of a variant."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from pytest_inferlab.engines.base import Engine
from pytest_inferlab.engines.in_process import log_probs
from pytest_inferlab.ground.child import Progress, Report, run_child
from pytest_inferlab.measure.fidelity import ReferenceLogProbs, StoredLogProbs, compare, windows
from pytest_inferlab.specs.core import ModelSpec, spec_dict

FIDELITY_TEXT = "data/prompts/long_report.txt"  # ~1,400 tokens of original prose shipped in the package
FIDELITY_WINDOW = 512


def fidelity_windows(engine: Engine, window: int = FIDELITY_WINDOW) -> list[list[int]]:
    """The shipped fidelity text, tokenized by ``engine`` and cut into windows."""
    text = (importlib.resources.files("pytest_inferlab") / FIDELITY_TEXT).read_text(encoding="utf-8")
    return windows(engine.tokenizer(text)["input_ids"], window)


def reference_log_probs(engine: Engine, window: int = FIDELITY_WINDOW) -> ReferenceLogProbs:
    return ReferenceLogProbs(engine.module, fidelity_windows(engine, window), engine.info.device.torch_name)


def stored_reference_log_probs(model: ModelSpec, device: str, path: Path,
                               progress: Progress | None = None) -> StoredLogProbs:
    """The reference's log-probabilities computed in a child process (ground/child.py) into ``path``."""
    import torch

    job = {"model": spec_dict(model), "device": device, "threads": torch.get_num_threads(), "path": str(path),
           "window": FIDELITY_WINDOW}
    found = run_child(f"{__name__}:reference_job", job, what=f"reference log-probabilities of {model.name} (child process)",
                      progress=progress)
    return StoredLogProbs(found["window_ids"], path)


def reference_job(job: dict[str, Any], report: Report) -> dict[str, Any]:
    """In the child: the reference rebuilt from its spec, its log-probabilities of the fidelity text saved."""
    import torch

    from pytest_inferlab.device import device_named
    from pytest_inferlab.assembly.factory import build_model_engine

    torch.set_num_threads(job["threads"])
    engine = build_model_engine(ModelSpec.from_dict(job["model"]), device_named(job["device"]))
    window_ids = fidelity_windows(engine, job["window"])
    values = []
    for index, ids in enumerate(window_ids):
        report(index, len(window_ids), "window")
        values += log_probs(engine.module, [ids], job["device"])
    report(len(window_ids), len(window_ids), "window")
    torch.save(values, job["path"])
    return {"window_ids": window_ids}


def fidelity_metrics(reference: ReferenceLogProbs | StoredLogProbs, engine: Engine) -> dict[str, float]:
    """The record's fidelity metrics of ``engine``'s model against ``reference``."""
    result = compare(reference, engine.window_log_probs(reference.window_ids))
    return {"kld_mean": result.kld_mean, "kld_p99": result.kld_p99, "top1_agreement": result.top1_agreement,
            "ppl": result.ppl_variant, "ppl_delta_pct": result.ppl_delta_pct, "fidelity_positions": result.positions,
            **({"kld_mean_se": result.kld_mean_se} if result.kld_mean_se is not None else {})}
