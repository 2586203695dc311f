"""Batching engines under load on the embedded model: sequential, static (padded) and continuous
batching, at fixed concurrency (closed loop), under open-loop arrivals (Poisson, bursts), and in a
rate sweep up to saturation. Every case leaves a point on the latency-throughput curve
(``latency_throughput.png`` beside the records) and its goodput under the suite's SLOs.

Realistic traffic (docs/traffic.md): static vs continuous batching under Poisson and bursty (gamma,
shape 0.25) arrivals of the same mean rate; a shared-prefix workload and multi-turn sessions on
continuous batching with and without prefix sharing (``prefix_cache_hit_rate``, per-turn TTFT)."""

import dataclasses

import pytest

from pytest_inferlab import SLO, BatchingSpec

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


@pytest.mark.inferlab(rounds=1, warmup=1)
@pytest.mark.parametrize("load", ["poisson:2", "gamma:2,0.25"], indirect=True)
@pytest.mark.parametrize("batching", ["static", "continuous"], indirect=True)
def test_bursty_arrivals(lab, model, workload, batching, load, slo):
    """The same mean rate, Poisson or in bursts: bursts queue behind a static batch's slowest request."""
    record = lab.measure(model, workload, batching=batching, load=load, slo=slo)
    assert record.conditions["load_generator"]["shortfall"] is None


PREFIX_SHARING = [BatchingSpec.of("continuous", prefix_sharing=True), BatchingSpec.of("continuous", prefix_sharing=False)]


@pytest.mark.inferlab(rounds=1, warmup=1)
@pytest.mark.parametrize("workload", ["shared-prefix", "multi-turn"], indirect=True)
@pytest.mark.parametrize("batching", PREFIX_SHARING, indirect=True, ids=["prefix-sharing", "no-sharing"])
def test_prefix_reuse(lab, model, workload, batching, slo):
    """Requests that share a prompt prefix, or resend a conversation's history: reused from the paged
    cache, or computed again."""
    record = lab.measure(model, workload, batching=batching, load="closed:4", slo=slo)
    sharing = dict(batching.settings)["prefix_sharing"]
    assert (record["prefix_cache_hit_rate"] > 0) == sharing
