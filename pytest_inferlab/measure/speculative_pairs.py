"""Interleaved rounds of one case: the target with drafting and the same target without, so the
speedup and the exactness check come from the same run, under the same conditions.

Greedy exactness allows one thing: verifying k drafted tokens runs the target's kernels on a batch
of k positions, whose float sums round differently from one-position decoding. Where the two
outputs part at a near tie (the target's own log-probabilities of the two tokens within
``NEAR_TIE_NATS``, measure/exactness.py), the check records the margin and the case does not fail;
any wider gap does.
llama.cpp shows this on the embedded Q4_1 file (a 0.09-nat tie in the copy-edit workload)."""

from __future__ import annotations

from typing import Any, Sequence

from pytest_inferlab.ground.alternation import pair_order
from pytest_inferlab.measure.metrics import Measurement
from pytest_inferlab.run.runner import run_round
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.engines.base import Engine
from pytest_inferlab.ground.trace import AssistUsage, Request, RoundTrace
from pytest_inferlab.measure.exactness import EXACT, Exactness, Mismatch, judge_exactness, margin_from
from pytest_inferlab.measure.speculative import speculative_measurements, unigram_tv


class SpeculativePairs:
    """The undrafted twin of a drafting engine and the rounds of both."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reference = engine.without_assist()
        self.drafted: list[RoundTrace] = []
        self.undrafted: list[RoundTrace] = []
        self.usages: list[AssistUsage] = []
        self.prompts: dict[int, tuple[int, ...]] = {}  # request index -> prompt ids (tie margins)

    @classmethod
    def for_engine(cls, engine: Engine, batch_size: int, load: Any) -> "SpeculativePairs | None":
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
        self.prompts.update({r.index: tuple(r.prompt_ids) for r in requests})
        for which in pair_order(done, "drafted", "undrafted"):
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
        """The speculative metrics and the exactness check (greedy: token for token, three states
        (measure/exactness.py); sampling: the token distributions, with the seed recorded)."""
        found = speculative_measurements(self.undrafted, self.drafted, self.usages, sampling.seed)
        check: dict[str, Any] = {"method": self.engine.info.speculative.to_dict(), "greedy": sampling.greedy,
                                 "sampling_seed": None if sampling.greedy else sampling.seed,
                                 "checked_requests": sum(len(r.requests) for r in self.drafted),
                                 "exact": None, "exactness": None, "first_mismatch": None}
        if sampling.greedy:
            result = self.exactness()
            check.update(exact=result.state == EXACT, exactness=result.state,
                         first_mismatch=_legacy_mismatch(result.mismatch))
            check["exactness_check"] = result.to_dict()
        else:
            tv = unigram_tv(self.undrafted, self.drafted)
            if tv is not None:
                found["sampled_unigram_tv"] = Measurement("fraction", tv)
        return found, check

    def exactness(self) -> Exactness:
        """The drafted rounds' outputs against the undrafted twin's, near ties scored by the twin itself."""
        reference = {r.index: r.output_ids for t in self.undrafted for r in t.requests if r.ok}
        drafted = [{r.index: r.output_ids for r in t.requests if r.ok} for t in self.drafted]
        return judge_exactness(reference, drafted, "the target without drafting",
                               margin_from(self.reference, self.prompts, reference))


def _legacy_mismatch(mismatch: Mismatch | None) -> dict[str, Any] | None:
    """``conditions.speculative.first_mismatch`` as records have always had it (target/speculative)."""
    if mismatch is None:
        return None
    out: dict[str, Any] = {"request": mismatch.request, "position": mismatch.position}
    if mismatch.expected is not None and mismatch.got is not None:
        out.update(target=mismatch.expected, speculative=mismatch.got, tie_margin_nats=mismatch.tie_margin_nats,
                   near_tie=mismatch.near_tie)
    return out
