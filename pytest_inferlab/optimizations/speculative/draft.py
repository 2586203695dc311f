"""Draft engines built from a target: a layer-truncated copy that shares the target's weights."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from pytest_inferlab.compat import module_view
from pytest_inferlab.engines.transformers_engine import TransformersEngine, weight_bytes
from pytest_inferlab.optimizations.speculative import SpeculativeConfigError


def with_generation_config(model: Any, **fields: Any) -> Any:
    """A view of ``model`` (same modules and tensors) with its own generation config."""
    view = module_view(model)
    view.generation_config = copy.deepcopy(model.generation_config)
    for name, value in fields.items():
        setattr(view.generation_config, name, value)
    return view


def truncated_engine(engine: TransformersEngine, layers: int) -> TransformersEngine:
    """The target's first ``layers`` decoder layers, embeddings, final norm and head, sharing their
    tensors (no copy of the weights): the cheapest draft of the target's own family."""
    import torch

    model = engine.module
    total = model.config.num_hidden_layers
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "layers"):
        raise SpeculativeConfigError(f"speculative draft: layers={layers} needs a decoder with .model.layers; "
                                     f"{type(model).__name__} has none")
    if not 1 <= layers < total:
        raise SpeculativeConfigError(f"speculative draft: layers={layers} must be between 1 and {total - 1} "
                                     f"(the target has {total})")
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = layers
    if getattr(config, "layer_types", None):
        config.layer_types = list(config.layer_types)[:layers]
    draft_inner = module_view(inner)
    draft_inner.layers = torch.nn.ModuleList(list(inner.layers)[:layers])
    draft_inner.config = config
    draft = module_view(model)
    draft.model = draft_inner
    draft.config = config
    draft.generation_config = copy.deepcopy(model.generation_config)
    params, nbytes = weight_bytes(draft)
    name = f"{engine.info.model.name}[:{layers} layers]"
    info = dataclasses.replace(engine.info, model=dataclasses.replace(engine.info.model, name=name), parameters=params,
                               model_bytes=nbytes, facts={**engine.info.facts, "layers": layers})
    return TransformersEngine(draft, engine.tokenizer, info)
