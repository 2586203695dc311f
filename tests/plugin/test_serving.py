"""The serving path through the fixtures, against a real ``transformers serve`` on 127.0.0.1."""

import json
import socket

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


def test_a_started_server_is_measured_survives_nothing_and_is_cleaned_up(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(*ARGS)
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_after_the_death*", "the server (pid *) exited with code -9; its log*",
        "*test_server_dies*", "every request failed; first error: ConnectError*",
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


def test_an_external_server_is_used_and_an_unreachable_one_refused(pytester, tmp_path):
    pytester.makepyfile(test_suite=SUITE.split("def test_server_dies")[0])
    from pytest_inferlab.device import CPU
    from pytest_inferlab.engines import load_engine
    from pytest_inferlab.engines.local_server import LocalServer, free_port, plain_folder
    from pytest_inferlab.engines.sources import resolve_model

    server = LocalServer(plain_folder(load_engine("transformers", resolve_model("dummy:tiny"), CPU))).start()
    try:
        result = pytester.runpytest_subprocess(*ARGS, f"--inferlab-server-url={server.url}",
                                               f"--inferlab-server-model={server.folder}")
        assert result.ret == 0, result.stdout.str()
        result.stdout.fnmatch_lines(["*2 passed*"])
        assert server.alive()  # a user's server is never stopped by the plugin
    finally:
        server.stop()
    port = free_port()
    result = pytester.runpytest_subprocess(*ARGS, f"--inferlab-server-url=http://127.0.0.1:{port}")
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
    result = pytester.runpytest_subprocess(*ARGS)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*parallel layout 'tq2': expected tpN, ppN or tpN-ppN*",
                                 "SKIPPED ?2? *vllm: vLLM is not installed*", "*2 skipped, 1 error*"])
