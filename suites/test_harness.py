"""The lab measures itself: the recording path vs a bare model.generate loop, interleaved."""

import pytest


@pytest.mark.inferlab(rounds=6, warmup=1)
@pytest.mark.parametrize("workload", ["short-chat"], indirect=True)
def test_harness_overhead(lab, model, workload):
    record = lab.measure_overhead(model, workload)
    assert record.measurements["bare_output_tok_per_s"].value > 0
