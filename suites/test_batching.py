"""Batching engines under load on the embedded model: sequential, static (padded) and continuous
batching, at fixed concurrency (closed loop), under open-loop arrivals (Poisson, bursts), and in a
rate sweep up to saturation. Every case leaves a point on the latency-throughput curve
(``latency_throughput.png`` beside the records) and its goodput under the suite's SLOs."""

import dataclasses

import pytest

from pytest_inferlab import SLO

ENGINES = ["sequential", "static", "continuous"]

# A CPU chat SLO for a 135M model on 2 cores (the GPU one is for --inferlab-slo to set).
CPU_SLO = SLO(ttft_ms=1500, tpot_ms=150)


@pytest.fixture
def workload_overrides(inferlab_device):
    """16 requests of 16 new tokens on CPU: enough arrivals for 16 concurrent requests."""
    return {"count": 16, "output_tokens": 16} if inferlab_device.kind == "cpu" else {}


@pytest.fixture
def slo(inferlab_session, inferlab_device):
    """--inferlab-slo when given, else the CPU SLO (on GPU without --inferlab-slo: none)."""
    if inferlab_session.settings.slo is not None:
        return inferlab_session.settings.slo
    return CPU_SLO if inferlab_device.kind == "cpu" else SLO()


@pytest.mark.inferlab(rounds=1, warmup=1)
@pytest.mark.parametrize("load", ["closed:1", "closed:4", "closed:16"], indirect=True)
@pytest.mark.parametrize("batching", ENGINES, indirect=True)
def test_concurrency(lab, model, workload, batching, load, slo):
    record = lab.measure(model, workload, batching=batching, load=load, slo=slo)
    assert record["failed_requests"] == 0


@pytest.mark.inferlab(rounds=1, warmup=1)
@pytest.mark.parametrize("load", ["poisson:2", "burst:8@2"], indirect=True)
@pytest.mark.parametrize("batching", ENGINES, indirect=True)
def test_open_loop(lab, model, workload, batching, load, slo):
    record = lab.measure(model, workload, batching=batching, load=load, slo=slo)
    assert record.conditions["load_generator"]["shortfall"] is None


@pytest.mark.parametrize("batching", ["static", "continuous"], indirect=True)
def test_saturation(lab, model, workload, batching, slo, inferlab_device):
    # 48 arrivals per rate: enough for a queue to build where the engine cannot keep up
    budget = 180 if inferlab_device.kind == "cpu" else None
    record = lab.sweep(model, dataclasses.replace(workload, count=48), batching=batching, slo=slo, budget_s=budget)
    assert record["capacity_req_per_s"] > 0
