"""What an in-process torch module offers every engine that has one: its log-probabilities over token
windows (fidelity, tie margins) and lm-eval's HF wrapper around it (task accuracy). Engine.window_log_probs
and Engine.lm_eval_model use them by default; measure/ builds on them."""

from __future__ import annotations

from typing import Any, Sequence


def log_probs(model: Any, window_ids: Sequence[Sequence[int]], device: str = "cpu") -> list[Any]:
    """float32 log-softmax of the next-token logits, one [len - 1, vocab] tensor per window."""
    import torch

    out = []
    with torch.inference_mode():
        for ids in window_ids:
            inputs = torch.tensor([list(ids)], device=device)
            logits = model(input_ids=inputs).logits[0, :-1].float()
            out.append(torch.log_softmax(logits, dim=-1).cpu())
    return out


def hf_lm(model: Any, tokenizer: Any, device: str, batch_size: int = 8) -> Any:
    """lm-eval's HF wrapper around an in-memory torch model (quantized or not)."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, device=device, batch_size=batch_size)
