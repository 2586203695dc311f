"""The OpenAI-compatible server engine: stream parsing and token counting on hand-made streams,
then a real ``transformers serve`` on 127.0.0.1 (dummy:tiny) for requests, timeouts and shutdown."""

import dataclasses
import socket

import pytest

from pytest_inferlab.device import CPU
from pytest_inferlab.engines import load_engine
from pytest_inferlab.engines.openai_engine import (OpenAIServerEngine, ServerUnreachable, StreamResult, chunk_tokens,
                                                   parse_stream, probe)
from pytest_inferlab.engines.local_server import LocalServer, free_port, plain_folder
from pytest_inferlab.engines.sources import resolve_model
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.run.workloads import materialize, workloads


def test_parse_stream_counts_malformed_lines_and_reads_usage():
    ticks = iter(range(100))
    lines = ['data: {"choices":[{"delta":{"role":"assistant"}}]}', "", ": keep-alive",
             'data: {"choices":[{"delta":{"content":"Hel"}}]}', "garbage without a prefix", "data: {not json",
             'data: {"choices":[{"text":"lo"}]}', 'data: ["a list"]',
             'data: {"choices":[],"usage":{"completion_tokens":3,"prompt_tokens":5}}', "data: [DONE]",
             'data: {"choices":[{"text":"after done"}]}']
    result = parse_stream(lines, clock=lambda: next(ticks))
    assert result.texts == ("Hel", "lo") and result.times == (3, 6)
    assert result.usage_tokens == 3 and result.malformed == 3


class Words:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def test_chunk_tokens_prefer_usage_else_retokenize():
    no_usage = StreamResult((1.0, 2.0), ("a b", "c"), None, 0)
    assert chunk_tokens(no_usage, Words()) == ((2, 1), "retokenized")
    with_usage = StreamResult((1.0, 2.0), ("a b", "c"), 5, 0)
    assert chunk_tokens(with_usage, Words()) == ((2, 3), "usage")


def test_an_unreachable_server_is_named():
    port = free_port()  # nothing listens there
    with pytest.raises(ServerUnreachable, match=f"127.0.0.1:{port}: no OpenAI-compatible server"):
        probe(f"http://127.0.0.1:{port}", timeout_s=2)


@pytest.fixture(scope="module")
def tiny():
    return load_engine("transformers", resolve_model("dummy:tiny"), CPU)


@pytest.fixture(scope="module")
def server(tiny):
    local = LocalServer(plain_folder(tiny)).start()
    yield local
    local.stop()


def engine_for(server, tiny, **kwargs):
    return OpenAIServerEngine(server.url, str(server.folder), tiny.info.model, tiny.tokenizer, **kwargs)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_real_server_streams_timed_tokens(server, tiny, api):
    engine = engine_for(server, tiny, api=api)
    spec = dataclasses.replace(workloads.get("short-chat"), count=2, output_tokens=6)
    requests = materialize(spec, engine.encode, engine.info.vocab_size)
    traces = engine.generate(requests, SamplingSpec())
    assert all(t.ok for t in traces), [t.error for t in traces]
    for trace in traces:
        assert trace.output_tokens == 6 and list(trace.chunk_times) == sorted(trace.chunk_times)
        assert trace.t_send <= trace.chunk_times[0]
    assert engine.stats["tokens_from_usage"] == 2


def test_a_request_timing_out_is_a_failed_request(server, tiny):
    engine = engine_for(server, tiny, timeout_s=0.05)
    request = materialize(dataclasses.replace(workloads.get("short-chat"), count=1, output_tokens=400),
                          engine.encode, engine.info.vocab_size)[0]
    trace = engine.send(request, SamplingSpec())
    assert not trace.ok and trace.error == "timed out after 0.05 s" and engine.stats["timeouts"] == 1


def test_the_server_stops_by_its_process_group(tiny):
    local = LocalServer(plain_folder(tiny)).start()
    pid = local.process.pid
    local.stop()
    assert local.process.poll() is not None
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", local.port)) != 0
