"""A quantized variant as an Engine, and its fidelity metrics for the record."""

from __future__ import annotations

import dataclasses
import importlib.resources
from typing import Any

from pytest_inferlab.engines.base import Engine
from pytest_inferlab.engines.transformers_engine import TransformersEngine, weight_bytes
from pytest_inferlab.measure.fidelity import ReferenceLogProbs, compare, windows
from pytest_inferlab.specs.core import ModelSpec
from pytest_inferlab.optimizations.quant import quantize

FIDELITY_TEXT = "data/prompts/long_report.txt"  # ~1,400 tokens of original prose shipped in the package
FIDELITY_WINDOW = 512


def variant_engine(reference: TransformersEngine, spec: ModelSpec) -> Engine:
    """The reference engine's model quantized by ``spec.quant``; same tokenizer, its own facts. A
    llama.cpp rung is its own engine on the rung's GGUF file, with as many threads as torch uses."""
    import torch

    from pytest_inferlab.optimizations.quant import quant_methods
    from pytest_inferlab.optimizations.quant.llamacpp_rungs import LlamaCppRung

    method = quant_methods.get(spec.quant.method)
    if isinstance(method, LlamaCppRung):
        return method.engine(spec, reference.info.device, torch.get_num_threads())
    variant = quantize(reference.module, spec.quant, reference.info.device, reference.tokenizer)
    params, nbytes = weight_bytes(variant.model)
    info = dataclasses.replace(reference.info, model=spec, model_bytes=nbytes, parameters=params,
                               facts={**reference.info.facts, "quantization": {**spec.quant.to_dict(), **variant.facts}})
    return TransformersEngine(variant.model, reference.tokenizer, info)


def fidelity_windows(engine: TransformersEngine, window: int = FIDELITY_WINDOW) -> list[list[int]]:
    """The shipped fidelity text, tokenized by ``engine`` and cut into windows."""
    text = (importlib.resources.files("pytest_inferlab") / FIDELITY_TEXT).read_text(encoding="utf-8")
    return windows(engine.tokenizer(text)["input_ids"], window)


def reference_log_probs(engine: TransformersEngine, window: int = FIDELITY_WINDOW) -> ReferenceLogProbs:
    return ReferenceLogProbs(engine.module, fidelity_windows(engine, window), engine.info.device.torch_name)


def fidelity_metrics(reference: ReferenceLogProbs, engine: Engine) -> dict[str, float]:
    """The record's fidelity metrics of ``engine``'s model against ``reference``."""
    result = compare(reference, engine.window_log_probs(reference.window_ids))
    return {"kld_mean": result.kld_mean, "kld_p99": result.kld_p99, "top1_agreement": result.top1_agreement,
            "ppl": result.ppl_variant, "ppl_delta_pct": result.ppl_delta_pct}
