"""The OpenAI-compatible server engine: stream parsing and token counting on hand-made streams,
then a real ``transformers serve`` on 127.0.0.1 (dummy:tiny) for requests, timeouts and shutdown."""

import dataclasses
import socket

import pytest

from pytest_inferlab.device import CPU
from pytest_inferlab.engines import load_engine
from pytest_inferlab.engines.openai_engine import OpenAIServerEngine, ServerUnreachable, probe
from pytest_inferlab.loadgen.sse import StreamResult, count_tokens, parse_stream, spread
from pytest_inferlab.engines.local_server import LocalServer, free_port, plain_folder
from pytest_inferlab.engines.sources import resolve_model
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.run.workloads import materialize
from pytest_inferlab.specs.workloads import workloads


def test_parse_stream_reads_content_and_usage_and_skips_other_fields():
    ticks = iter(range(100))
    lines = ['data: {"choices":[{"delta":{"role":"assistant"}}]}', "", ": keep-alive", "event: message", "id: 7",
             'data: {"choices":[{"delta":{"content":"Hel"}}]}', 'data: {"choices":[{"text":"lo"}]}',
             'data: {"choices":[],"usage":{"completion_tokens":3,"prompt_tokens":5}}', "data: [DONE]",
             'data: {"choices":[{"text":"after done"}]}']
    result = parse_stream(lines, clock=lambda: next(ticks))
    assert result.texts == ("Hel", "lo") and result.times == (5, 6)
    assert result.usage_tokens == 3 and result.done and result.error is None


@pytest.mark.parametrize("bad, kind", [("garbage without a prefix", "malformed_streams"),
                                       ("data: {not json", "malformed_streams"), ('data: ["a list"]', "malformed_streams"),
                                       ('data: {"error": {"message": "out of memory"}}', "server_errors")])
def test_a_broken_stream_fails_with_the_line_that_broke_it(bad, kind):
    result = parse_stream(['data: {"choices":[{"text":"a"}]}', bad, "data: [DONE]"])
    assert result.error is not None and result.error_kind == kind and result.texts == ("a",)
    assert (bad[:20] in result.error) or "out of memory" in result.error


def test_a_stream_cut_off_without_done_is_broken_one_ended_by_http_is_not():
    result = parse_stream(['data: {"choices":[{"text":"a"}]}'], body_complete=False)
    assert result.error_kind == "connection_errors" and "without [DONE]" in result.error
    assert parse_stream(['data: {"choices":[{"text":"a"}]}']).error is None  # transformers serve sends no [DONE]


def test_a_stream_finished_for_length_carried_exactly_max_tokens():
    """llama-cpp-python's server sends no usage; a stream it ended at max_tokens had that many tokens,
    whatever re-tokenizing its text says (here 5 words in 4 chunks)."""
    result = parse_stream(['data: {"choices":[{"text":"a b ","finish_reason":null}]}', 'data: {"choices":[{"text":"c "}]}',
                           'data: {"choices":[{"text":"d "}]}', 'data: {"choices":[{"text":"e","finish_reason":"length"}]}',
                           "data: [DONE]"])
    assert result.finish_reason == "length" and result.usage_tokens is None
    assert count_tokens(result, Words(), max_tokens=4) == ((1, 1, 1, 1), "length")
    assert count_tokens(result, Words(), max_tokens=None)[1] == "retokenized"  # no limit known: re-tokenized
    stopped = dataclasses.replace(result, finish_reason="stop")
    assert count_tokens(stopped, Words(), max_tokens=4)[1] == "retokenized"  # stopped early: the limit says nothing


class Words:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def test_token_counts_usage_wins_then_chunks_then_retokenized():
    # usage wins and is never exceeded, spread by each chunk's own length
    assert count_tokens(StreamResult((1.0, 2.0), ("a b", "c"), 5), Words()) == ((3, 2), "usage")
    assert count_tokens(StreamResult((1.0, 2.0, 3.0), ("a b", "c d", "e"), 3), Words()) == ((1, 1, 1), "usage")
    over = count_tokens(StreamResult((1.0, 2.0, 3.0), ("a b c", "d e", "f"), 4), Words())  # re-tokenizing says 6
    assert sum(over[0]) == 4 and over[1] == "usage"
    # no usage: text no longer than its chunks -> one token per chunk
    assert count_tokens(StreamResult((1.0, 2.0), ("a", "b"), None), Words()) == ((1, 1), "chunks")
    # no usage, several tokens per chunk -> re-tokenized
    assert count_tokens(StreamResult((1.0, 2.0), ("a b ", "c"), None), Words()) == ((2, 1), "retokenized")
    assert spread(7, [1, 1, 1]) in {(3, 2, 2), (2, 3, 2), (2, 2, 3)} and sum(spread(2, [5, 1, 1])) == 2


def test_an_unreachable_server_is_named():
    port = free_port()  # nothing listens there
    with pytest.raises(ServerUnreachable, match=f"127.0.0.1:{port}: no OpenAI-compatible server"):
        probe(f"http://127.0.0.1:{port}", timeout_s=2)


@pytest.fixture(scope="module")
def tiny():
    return load_engine("transformers", resolve_model("dummy:tiny"), CPU)


@pytest.fixture(scope="module")
def server(tiny):
    local = LocalServer(str(plain_folder(tiny))).start()
    yield local
    local.stop()


def engine_for(server, tiny, **kwargs):
    return OpenAIServerEngine(server.url, server.served, tiny.info.model, tiny.tokenizer, **kwargs)


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
    local = LocalServer(str(plain_folder(tiny))).start()
    pid = local.process.pid
    local.stop()
    assert local.process.poll() is not None
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", local.port)) != 0
