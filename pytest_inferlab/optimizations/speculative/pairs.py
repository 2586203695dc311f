"""Interleaved rounds of one case: the target with drafting and the same target without, so the
speedup and the exactness check come from the same run, under the same conditions."""

from __future__ import annotations

from typing import Any, Sequence

from pytest_inferlab.measure.metrics import Measurement
from pytest_inferlab.run.runner import run_round
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.run.trace import Request, RoundTrace
from pytest_inferlab.optimizations.speculative.measure import first_mismatch, speculative_measurements, unigram_tv


class SpeculativePairs:
    """The undrafted twin of a drafting engine and the rounds of both."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.reference = engine.without_assist()
        self.drafted: list[RoundTrace] = []
        self.undrafted: list[RoundTrace] = []
        self.usages: list[Any] = []

    @classmethod
    def for_engine(cls, engine: Any, batch_size: int, load: Any) -> "SpeculativePairs | None":
        if engine.info.speculative is None:
            return None
        if batch_size != 1 or load is not None:
            raise ValueError(f"speculative {engine.info.speculative.method}: transformers' assisted generation runs one "
                             "request at a time; measure with batch_size=1 and no load")
        return cls(engine)

    def clear(self) -> None:
        self.drafted.clear()
        self.undrafted.clear()
        self.usages.clear()

    def round(self, requests: Sequence[Request], sampling: SamplingSpec, done: int, warm: bool) -> RoundTrace:
        rounds: dict[str, RoundTrace] = {}
        for which in (("drafted", "undrafted") if done % 2 == 0 else ("undrafted", "drafted")):
            start = len(self.engine.assist_log)
            engine = self.engine if which == "drafted" else self.reference
            rounds[which] = run_round(engine, requests, 1, sampling, warmup=warm)
            if which == "drafted" and not warm:
                self.usages.extend(self.engine.assist_log[start:])
        if not warm:
            self.drafted.append(rounds["drafted"])
            self.undrafted.append(rounds["undrafted"])
        return rounds["drafted"]

    def measurements(self, sampling: SamplingSpec) -> tuple[dict[str, Measurement], dict[str, Any]]:
        """The speculative metrics and the exactness check (greedy: token for token; sampling: the
        token distributions, with the seed recorded)."""
        found = speculative_measurements(self.undrafted, self.drafted, self.usages, sampling.seed)
        check: dict[str, Any] = {"method": self.engine.info.speculative.to_dict(), "greedy": sampling.greedy,
                                 "sampling_seed": None if sampling.greedy else sampling.seed,
                                 "checked_requests": sum(len(r.requests) for r in self.drafted),
                                 "exact": None, "first_mismatch": None}
        if sampling.greedy:
            check["first_mismatch"] = first_mismatch(self.undrafted, self.drafted)
            check["exact"] = check["first_mismatch"] is None
        else:
            tv = unigram_tv(self.undrafted, self.drafted)
            if tv is not None:
                found["sampled_unigram_tv"] = Measurement("fraction", tv)
        return found, check
