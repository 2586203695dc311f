"""Fidelity of a lossy KV cache: the next-token distributions it produces while decoding, against
the model's own distributions for the same tokens computed without any cache (one full forward)."""

from __future__ import annotations

from typing import Any

from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.ground.trace import Request


def kv_decode_kld(engine: Any, prompt_ids: tuple[int, ...], new_tokens: int) -> float:
    """Mean KL(P_no-cache || P_cache) in nats over the ``new_tokens`` greedy decode steps of one
    request on ``engine`` (its cache configuration applies)."""
    import torch

    request = Request(0, tuple(prompt_ids), new_tokens, True)
    config = engine.generation_config([request], SamplingSpec())
    config.output_logits = True
    inputs = engine.inputs([request])
    with torch.inference_mode():
        out = engine.module.generate(**inputs, generation_config=config, **engine.cache_kwargs())
        cached = torch.stack(out.logits, dim=1)[0].float().log_softmax(-1)
        sequence = out.sequences[0]
        full = engine.module(sequence[None, :-1]).logits[0, len(prompt_ids) - 1:].float().log_softmax(-1)
    steps = min(len(cached), len(full))
    kld = (full[:steps].exp() * (full[:steps] - cached[:steps])).sum(-1).clamp_min(0.0)
    return float(kld.mean())
