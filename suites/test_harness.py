"""The lab measures itself: the recording path vs a bare model.generate loop, interleaved.

Target: the recording path costs <= 1% of tokens/s. The interleaved end-to-end comparison is
recorded with its 95% interval (wide on a noisy machine); the gate is the harness's own code,
timed in isolation, as a share of the round time.
"""

import pytest


@pytest.mark.inferlab(rounds=6, warmup=1)
@pytest.mark.parametrize("workload", ["short-chat"], indirect=True)
def test_harness_overhead(lab, model, workload):
    record = lab.measure_overhead(model, workload)
    cost = record["harness_cost_pct"]
    assert cost <= 1.0, f"the recording path's own code takes {cost:.3f}% of the round time (target <= 1%)"
