"""The serving path: a real OpenAI-compatible server measured under load. Without
--inferlab-server-url the plugin starts ``transformers serve`` with the embedded model on
127.0.0.1 and stops it at the end; with it, the same cases measure your server (vLLM's, ...).

Realistic traffic (docs/traffic.md): the shipped Mooncake-style trace replayed twice as fast as
recorded, and multi-turn conversations whose turns resend the history after a think time (per-turn
TTFT; ``prefix_cache_hit_rate`` where the server reports cached prompt tokens)."""

import pytest

from pytest_inferlab import SLO


@pytest.fixture
def workload_overrides(inferlab_device):
    return {"count": 8, "output_tokens": 16} if inferlab_device.kind == "cpu" else {}


@pytest.mark.inferlab(rounds=1, warmup=1)
@pytest.mark.parametrize("load", ["closed:1", "closed:4", "poisson:1"], indirect=True)
def test_serving(lab, server_model, workload, load, inferlab_session):
    slo = inferlab_session.settings.slo or SLO(ttft_ms=2000, tpot_ms=200)
    record = lab.measure(server_model, workload, batching="server", load=load, slo=slo)
    assert record["failed_requests"] == 0


@pytest.mark.inferlab(rounds=1, warmup=1)
@pytest.mark.parametrize("load", ["trace:2"], indirect=True)
@pytest.mark.parametrize("workload", ["trace-chat"], indirect=True)
def test_trace_replay(lab, server_model, workload, load, inferlab_session):
    record = lab.measure(server_model, workload, batching="server", load=load)
    assert record["failed_requests"] == 0
    assert record.conditions["traffic"]["trace"]["requests"] == workload.count


@pytest.mark.inferlab(rounds=1, warmup=1)
@pytest.mark.parametrize("load", ["closed:2"], indirect=True)
@pytest.mark.parametrize("workload", ["multi-turn"], indirect=True)
def test_conversations(lab, server_model, workload, load, inferlab_session):
    record = lab.measure(server_model, workload, batching="server", load=load)
    assert record["failed_requests"] == 0
    assert record["ttft_later_turns_ms"] > 0 and record["ttft_first_turn_ms"] > 0
