"""The serving path through the fixtures, against a real ``transformers serve`` on 127.0.0.1."""

import json
import socket

import pytest

ARGS = ("--inferlab-model=dummy:tiny", "--inferlab-rounds=1", "--inferlab-warmup=0", "--inferlab-threads=1",
        "-p", "no:cacheprovider", "-rs")

SUITE = """
import os
import signal
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 3, "output_tokens": 5}

@pytest.mark.parametrize("load", ["closed:2", "poisson:20"], indirect=True)
def test_served(lab, server_model, workload, load):
    lab.measure(server_model, workload, batching="server", load=load)

def test_server_dies(lab, server_model, workload, inferlab_session):
    os.kill(inferlab_session.engines.server().process.pid, signal.SIGKILL)
    lab.measure(server_model, workload, batching="server", load="closed:2")

def test_after_the_death(lab, server_model, workload):
    lab.measure(server_model, workload, batching="server", load="closed:1")
"""


def port_open(url):
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) == 0


@pytest.mark.slow
@pytest.mark.alone  # the other processes' CPU share is judged: no xdist worker beside it
def test_a_started_server_is_measured_survives_nothing_and_is_cleaned_up(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess(*ARGS)
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_after_the_death*", "the server (pid *) exited with code -9; its log*",
        "*test_server_dies*", "every request failed; first error: ClientConnectorError: Cannot connect to host 127.0.0.1:*",
        "*1 failed, 2 passed, 1 error*"])
    records = [json.loads(p.read_text()) for p in (pytester.path / ".inferlab" / "runs").rglob("*.json")]
    assert len(records) == 2
    for record in records:
        values = {m: v["value"] for m, v in record["measurements"].items()}
        assert values["failed_requests"] == 0 and values["output_tok_per_s"] > 0
        assert record["engine"]["engine"] == "openai-server" and record["spec"]["batching"]["kind"] == "server"
        assert record["conditions"]["server"]["tokens_from_usage"] == 3
        assert record["conditions"]["other_cpu_share"] < 0.5  # the server's CPU is the case's own
        assert not port_open(record["engine"]["facts"]["base_url"])  # nothing left listening


@pytest.mark.slow
def test_an_external_server_is_used_and_an_unreachable_one_refused(pytester, tmp_path):
    pytester.makepyfile(test_suite=SUITE.split("def test_server_dies")[0])
    from pytest_inferlab.device import CPU
    from pytest_inferlab.engines import load_engine
    from pytest_inferlab.engines.local_server import LocalServer, free_port, plain_folder
    from pytest_inferlab.engines.sources import resolve_model

    server = LocalServer(str(plain_folder(load_engine("transformers", resolve_model("dummy:tiny"), CPU)))).start()
    try:
        result = pytester.runpytest_inprocess(*ARGS, f"--inferlab-server-url={server.url}",
                                               f"--inferlab-server-model={server.served}")
        assert result.ret == 0, result.stdout.str()
        result.stdout.fnmatch_lines(["*2 passed*"])
        assert server.alive()  # a user's server is never stopped by the plugin
    finally:
        server.stop()
    port = free_port()
    result = pytester.runpytest_inprocess(*ARGS, f"--inferlab-server-url=http://127.0.0.1:{port}")
    assert result.ret == 4
    result.stderr.fnmatch_lines([f"*--inferlab-server-url: http://127.0.0.1:{port}: no OpenAI-compatible server*"])


def test_vllm_cases_skip_with_the_reason_where_vllm_cannot_run(pytester):
    pytester.makepyfile(test_suite="""
import pytest

@pytest.mark.parametrize("parallel", ["tp1", "tp2-pp2"], indirect=True)
def test_vllm(lab, vllm_model, workload, parallel):
    lab.measure(vllm_model, workload)

@pytest.mark.parametrize("parallel", ["tq2"], indirect=True)
def test_bad_layout(parallel):
    pass
""")
    result = pytester.runpytest_inprocess(*ARGS)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*parallel layout 'tq2': expected tpN, ppN or tpN-ppN*",
                                 "SKIPPED ?2? *vllm: vLLM is not installed*", "*2 skipped, 1 error*"])


@pytest.mark.slow
@pytest.mark.alone
def test_a_server_of_known_timing_is_measured_with_its_own_metrics_and_its_saturation(pytester):
    """As a user would: the suites against a running server (here tools/truth_server.py, which
    speaks vLLM's /metrics names), one case within its capacity and one far beyond it."""
    from truth_server import RunningTruthServer, TruthSpec

    pytester.makepyfile(test_suite="""
import pytest

@pytest.fixture
def workload_overrides(request):
    return {"count": 600 if "poisson" in request.node.name else 8, "output_tokens": 8}  # 6 s of arrivals at 100/s

@pytest.mark.parametrize("load", ["closed:4", "poisson:100"], indirect=True)
def test_served(lab, server_model, workload, load):
    lab.measure(server_model, workload, batching="server", load=load)
""")
    with RunningTruthServer(TruthSpec(ttft_ms=150, gap_ms=5, tokens=8, limit=2)) as server:
        result = pytester.runpytest_inprocess(*ARGS, f"--inferlab-server-url={server.url}",
                                               "--inferlab-server-model=truth")
    assert result.ret == 0, result.stdout.str()
    records = {json.loads(p.read_text())["spec"]["load"]["process"]: json.loads(p.read_text())
               for p in (pytester.path / ".inferlab" / "runs").rglob("*.json")}
    within, beyond = records["closed"], records["poisson"]
    values = {m: v["value"] for m, v in within["measurements"].items()}
    assert values["server_running_max"] == 2 and values["server_waiting_max"] == 2  # 4 clients, 2 slots
    assert values["client_lag_ms"] < 2 and values["failed_requests"] == 0
    assert within["conditions"]["server_metrics"]["server"] == "vllm"
    assert within["conditions"]["server"]["tokens_from_usage"] == 8
    generator = beyond["conditions"]["load_generator"]
    assert generator["over_saturated"]["in_flight_slope"]["lower_bound_per_s"] > 0
    assert beyond["measurements"]["failed_requests"]["value"] > 0
    assert beyond["conditions"]["invalid"].startswith("the server was over-saturated at this load")
    assert within["conditions"]["invalid"] is None


def test_someone_elses_server_is_never_encoded_with_the_embedded_tokenizer_silently(pytester):
    """The server serves a model this machine does not have and no model is named: a usage error
    naming both, before any case runs (it was: SmolLM2's tokenizer and chat template, silently)."""
    from truth_server import RunningTruthServer, TruthSpec

    pytester.makepyfile(test_suite=SUITE.split("def test_server_dies")[0])
    with RunningTruthServer(TruthSpec(ttft_ms=10, gap_ms=1, tokens=4)) as server:
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--inferlab-server-url={server.url}")
    assert result.ret == 4, result.stdout.str()
    result.stderr.fnmatch_lines(["*--inferlab-server-url=*serves 'truth'*'smollm2-135m''s tokenizer and chat "
                                 "template*--inferlab-server-model=*"])
