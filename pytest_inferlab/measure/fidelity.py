"""Fidelity of a model variant to its unoptimized reference, on fixed text (measure/catalog.py).

The text is cut into windows of ``window`` tokens; each window is one forward pass. Per next-token
position: KL(P_ref || P_variant) of the full next-token distributions, whether the two top-1
tokens agree, and each model's negative log-likelihood of the true next token (perplexity). The
reference's log-probabilities are computed once (``ReferenceLogProbs``) and reused for every
variant of a session.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pytest_inferlab.engines.in_process import log_probs

KLD_BLOCK = 64  # positions a block of the batch-means standard error of kld_mean


@dataclass(frozen=True, slots=True)
class Fidelity:
    kld_mean: float  # nats per position, mean over positions
    kld_p99: float
    top1_agreement: float  # fraction of positions where both models rank the same token first
    ppl_reference: float
    ppl_variant: float
    positions: int
    kld_mean_se: float | None = None  # standard error of kld_mean by batch means (KLD_BLOCK positions a block)

    @property
    def ppl_delta_pct(self) -> float:
        return (self.ppl_variant / self.ppl_reference - 1) * 100


def windows(ids: Sequence[int], window: int) -> list[list[int]]:
    """Consecutive, non-overlapping windows; a short tail (< 2 tokens) predicts nothing and is dropped."""
    if window < 2:
        raise ValueError(f"window={window}: needs at least 2 tokens (one to predict from, one to predict)")
    cuts = [list(ids[i : i + window]) for i in range(0, len(ids), window)]
    return [w for w in cuts if len(w) >= 2]


class ReferenceLogProbs:
    """The reference's log-probabilities of the fidelity text, computed here and held in memory."""

    def __init__(self, model: Any, window_ids: Sequence[Sequence[int]], device: str = "cpu") -> None:
        self.window_ids = [list(w) for w in window_ids]
        self.values = log_probs(model, self.window_ids, device)


class StoredLogProbs:
    """The reference's log-probabilities kept in a file (a preparation child wrote them, 275 MB for the
    embedded model's 1,400 tokens): read for each comparison and let go after, so no case's RSS holds
    them."""

    def __init__(self, window_ids: Sequence[Sequence[int]], path: Path) -> None:
        self.window_ids = [list(w) for w in window_ids]
        self.path = path

    @property
    def values(self) -> list[Any]:
        import torch

        return torch.load(self.path, mmap=True)


def compare(reference: ReferenceLogProbs | StoredLogProbs, variant_log_probs: Sequence[Any]) -> Fidelity:
    """KL, top-1 agreement and perplexities of a variant against the reference."""
    import torch

    values = reference.values
    if len(variant_log_probs) != len(values):
        raise ValueError(f"{len(variant_log_probs)} windows for the variant, {len(values)} for the reference")
    klds, agree, nll_ref, nll_var = [], 0, 0.0, 0.0
    for ids, ref, var in zip(reference.window_ids, values, variant_log_probs):
        if ref.shape != var.shape:
            raise ValueError(f"log-prob shapes differ: reference {tuple(ref.shape)}, variant {tuple(var.shape)} "
                             "(another tokenizer or vocabulary?)")
        kld = (ref.exp() * (ref - var)).sum(dim=-1).clamp_min(0.0)
        klds.append(kld)
        agree += int((ref.argmax(dim=-1) == var.argmax(dim=-1)).sum())
        targets = torch.tensor(ids[1:])
        nll_ref -= float(ref.gather(1, targets[:, None]).sum())
        nll_var -= float(var.gather(1, targets[:, None]).sum())
    all_kld = torch.cat(klds)
    n = int(all_kld.numel())
    if not all(math.isfinite(v) for v in (float(all_kld.sum()), nll_var)):
        raise FloatingPointError("the variant's log-probabilities are not finite (NaN/inf weights or overflow)")
    return Fidelity(kld_mean=float(all_kld.mean()), kld_p99=float(torch.quantile(all_kld, 0.99)),
                    top1_agreement=agree / n, ppl_reference=math.exp(nll_ref / n), ppl_variant=math.exp(nll_var / n),
                    positions=n, kld_mean_se=batch_means_se(all_kld.tolist()))


def batch_means_se(values: Sequence[float], block: int = KLD_BLOCK) -> float | None:
    """The standard error of the mean of ``values`` from the means of consecutive blocks of ``block``
    (the remainder left out): neighbouring positions of one text are correlated, so the plain
    per-position standard error would be too small; block means ``block`` apart nearly are not.
    None under two blocks. Its degrees of freedom: ``len(values) // block - 1``."""
    blocks = len(values) // block
    if blocks < 2:
        return None
    means = [statistics.fmean(values[i * block:(i + 1) * block]) for i in range(blocks)]
    return statistics.stdev(means) / math.sqrt(blocks)
