"""Rounds of a candidate engine interleaved with rounds of a reference engine (an optimization against
the unoptimized model), alternating which goes first, so that the speed ratio of each pair of rounds
cancels the slow drift of a shared machine (judge/paired.py). The candidate's round is whatever the
case runs: plain batches, or a speculative case's drafted and undrafted pair (a composition measured
against the unoptimized model: its combined effect)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from pytest_inferlab.ground.alternation import pair_order
from pytest_inferlab.engines.base import Engine
from pytest_inferlab.run.runner import run_round
from pytest_inferlab.ground.trace import Request, RoundTrace
from pytest_inferlab.specs.core import SamplingSpec


class ReferencePairs:
    """The reference's rounds beside a case's own: ``round`` runs both and returns the candidate's."""

    def __init__(self, candidate: Engine, reference: Engine, requests_for: Callable[[Engine], Sequence[Request]],
                 batch_size: int, load: Any) -> None:
        if not isinstance(reference, Engine):
            raise TypeError(f"measure(reference=...) takes an Engine to compare with (e.g. the model fixture), "
                            f"not {type(reference).__name__}")
        if load is not None:
            raise ValueError("measure(reference=...) pairs back-to-back batches round by round; under a load "
                             "(batching=/load=) measure the reference in its own case")
        self.candidate, self.reference = candidate, reference
        self.reference_requests, self.batch_size = requests_for(reference), batch_size
        self.reference_rounds: list[RoundTrace] = []

    def clear(self) -> None:
        self.reference_rounds.clear()

    def round(self, candidate_round: Callable[[], RoundTrace], sampling: SamplingSpec, done: int,
              warm: bool) -> RoundTrace:
        """One reference round and ``candidate_round()``, in alternating order; the candidate's trace."""
        traces: dict[str, RoundTrace] = {}
        for which in pair_order(done, "candidate", "reference"):
            if which == "candidate":
                traces[which] = candidate_round()
            else:
                traces[which] = run_round(self.reference, self.reference_requests, self.batch_size, sampling,
                                          warmup=warm)
        self.reference_rounds.append(traces["reference"])
        return traces["candidate"]

    def label(self) -> dict[str, Any]:
        info = self.reference.info
        kv = self.reference.last_kv  # the reference's cache after its latest round, for the optimization's KV ratio
        return {"kv_bytes_per_token": kv.bytes_per_token if kv else None,
                "model": info.model.name, "model_spec_id": info.model.spec_id,
                "quant": info.model.quant.to_dict() if info.model.quant else None,
                "kv_cache": info.kv_cache.to_dict() if info.kv_cache else None, "model_bytes": info.model_bytes}
