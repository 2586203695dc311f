"""A quantized variant as an Engine (its fidelity to the reference: measure/fidelity_text.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pytest_inferlab.engines.base import Engine
from pytest_inferlab.engines.transformers_engine import TransformersEngine, weight_bytes
from pytest_inferlab.ground.child import Progress
from pytest_inferlab.optimizations.quant import quantize
from pytest_inferlab.specs.core import ModelSpec


def variant_engine(reference: Engine, spec: ModelSpec, progress: Progress | None = None) -> Engine:
    """The reference engine's model quantized by ``spec.quant``; same tokenizer, its own facts. A
    method whose variant is an engine of its own (a llama.cpp rung) builds it (``own_engine``)."""
    from pytest_inferlab.optimizations.quant import quant_methods

    own = own_variant_engine(spec, reference.info.device, progress)
    if own is not None:
        return own
    variant = quantize(reference.module, spec.quant, reference.info.device, reference.tokenizer, progress)
    params, nbytes = weight_bytes(variant.model)
    info = dataclasses.replace(reference.info, model=spec, model_bytes=nbytes, parameters=params,
                               facts={**reference.info.facts, "quantization": {**spec.quant.to_dict(), **variant.facts}})
    return TransformersEngine(variant.model, reference.tokenizer, info, rebuild=spec)


def own_variant_engine(spec: ModelSpec, device: Any, progress: Progress | None = None) -> Engine | None:
    """The variant's own engine where its method runs one (with as many threads as torch uses), else None."""
    import torch

    from pytest_inferlab.optimizations.quant import quant_methods

    return quant_methods.get(spec.quant.method).own_engine(spec, device, torch.get_num_threads(), progress)
