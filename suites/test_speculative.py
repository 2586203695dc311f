"""Speculative decoding on the embedded model: which drafting method pays off on which workload.

Each case runs the target with drafting and without, interleaved round by round, and records the
speedup, the acceptance rate, tokens per target forward (counted), the draft's share of the time
and the exactness check (greedy: token for token the target's own output; a mismatch fails the
case). Methods: prompt lookup, a 6-layer truncated copy of the target as draft, an int8 copy as
draft, self-speculative early exit after layer 15; workloads: copy-heavy, free chat, code."""

import pytest

from pytest_inferlab import SpeculativeSpec

METHODS = [
    SpeculativeSpec.of("prompt-lookup", num_tokens=10, max_ngram=2),
    SpeculativeSpec.of("draft", layers=6, num_tokens=4),
    SpeculativeSpec.of("draft", quant="int8-weight", num_tokens=4),
    SpeculativeSpec.of("early-exit", layer=15),
]
IDS = ["prompt-lookup", "draft-6-layers", "draft-int8", "early-exit-15"]


@pytest.mark.inferlab(rounds=2, warmup=1)
@pytest.mark.parametrize("workload", ["copy-edit", "short-chat", "code"], indirect=True)
@pytest.mark.parametrize("speculative", METHODS, indirect=True, ids=IDS)
def test_speculative(lab, speculative_model, workload, speculative):
    record = lab.measure(speculative_model, workload)
    assert record.exactness.lossless  # exact, or equal up to a near tie
    assert record["tokens_per_target_forward"] >= 1.0
