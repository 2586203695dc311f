"""Latency and throughput of the base model: batch sizes x workloads."""

import pytest


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("workload", ["short-chat", "long-context"], indirect=True)
def test_latency(lab, model, workload, batch_size):
    record = lab.measure(model, workload, batch_size=batch_size)
    assert record["failed_requests"] == 0
