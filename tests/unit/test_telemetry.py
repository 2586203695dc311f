"""Server telemetry: each server family's /metrics text, in the exposition format and with the
names its documentation gives (vLLM's "Production Metrics", llama.cpp server's README `/metrics`,
TGI's "Metrics" reference, SGLang's "Production Metrics"), read into one vocabulary."""

import pytest

from pytest_inferlab.loadgen.telemetry import (RoundTelemetry, derived_values, parse_metrics, reading, schema_for,
                                               summarize)

VLLM = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="unsloth/Llama-3.2-1B-Instruct"}} {running}
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="unsloth/Llama-3.2-1B-Instruct"}} {waiting}
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{engine="0",model_name="unsloth/Llama-3.2-1B-Instruct"}} {kv}
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{{engine="0",model_name="unsloth/Llama-3.2-1B-Instruct"}} {queries}
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{{engine="0",model_name="unsloth/Llama-3.2-1B-Instruct"}} {hits}
# HELP vllm:spec_decode_num_draft_tokens_total Number of draft tokens.
# TYPE vllm:spec_decode_num_draft_tokens_total counter
vllm:spec_decode_num_draft_tokens_total{{engine="0",model_name="unsloth/Llama-3.2-1B-Instruct"}} {drafted}
# HELP vllm:spec_decode_num_accepted_tokens_total Number of accepted tokens.
# TYPE vllm:spec_decode_num_accepted_tokens_total counter
vllm:spec_decode_num_accepted_tokens_total{{engine="0",model_name="unsloth/Llama-3.2-1B-Instruct"}} {accepted}
# HELP vllm:iteration_tokens_total Histogram of number of tokens per engine_step.
# TYPE vllm:iteration_tokens_total histogram
vllm:iteration_tokens_total_sum{{engine="0",model_name="unsloth/Llama-3.2-1B-Instruct"}} 0.0
vllm:iteration_tokens_total_bucket{{engine="0",le="1.0",model_name="unsloth/Llama-3.2-1B-Instruct"}} 3.0
vllm:iteration_tokens_total_bucket{{engine="0",le="+Inf",model_name="unsloth/Llama-3.2-1B-Instruct"}} 3.0
vllm:iteration_tokens_total_count{{engine="0",model_name="unsloth/Llama-3.2-1B-Instruct"}} 3.0
"""

LLAMA_CPP = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 6886
# HELP llamacpp:prompt_seconds_total Prompt process time
# TYPE llamacpp:prompt_seconds_total counter
llamacpp:prompt_seconds_total 2903.63
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 3469
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 2.37151
# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.25
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
"""

TGI = """\
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 4
# TYPE tgi_queue_size gauge
tgi_queue_size 7
# TYPE tgi_request_count counter
tgi_request_count 120
# TYPE tgi_batch_current_max_tokens gauge
tgi_batch_current_max_tokens 4096
"""

SGLANG = """\
# HELP sglang:prompt_tokens_total Number of prefill tokens processed.
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 8.128902e+06
# HELP sglang:generation_tokens_total Number of generation tokens processed.
# TYPE sglang:generation_tokens_total counter
sglang:generation_tokens_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.557572e+06
# HELP sglang:token_usage The token usage
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.28
# HELP sglang:cache_hit_rate The cache hit rate
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.007507552643049313
# HELP sglang:num_running_reqs The number of running requests
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="meta-llama/Llama-3.1-8B-Instruct"} 12.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
# HELP sglang:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE sglang:time_to_first_token_seconds histogram
sglang:time_to_first_token_seconds_sum{model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.3518979474117756e+06
sglang:time_to_first_token_seconds_bucket{le="0.001",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
sglang:time_to_first_token_seconds_count{model_name="meta-llama/Llama-3.1-8B-Instruct"} 541.0
"""


def vllm(running=0, waiting=0, kv=0.0, queries=0, hits=0, drafted=0, accepted=0):
    return VLLM.format(running=running, waiting=waiting, kv=kv, queries=queries, hits=hits, drafted=drafted,
                       accepted=accepted)


@pytest.mark.parametrize("text, server, quantities", [
    (vllm(running=3, waiting=2, kv=0.5, queries=100, hits=40, drafted=30, accepted=21), "vllm",
     {"running": 3, "waiting": 2, "kv_cache_usage": 0.5, "prefix_cache_queries": 100, "prefix_cache_hits": 40,
      "spec_draft_tokens": 30, "spec_accepted_tokens": 21}),
    (LLAMA_CPP, "llama.cpp", {"running": 2, "waiting": 1, "kv_cache_usage": 0.25, "prompt_tokens": 6886,
                              "generation_tokens": 3469}),
    (TGI, "tgi", {"running": 4, "waiting": 7}),
    (SGLANG, "sglang", {"running": 12, "waiting": 3, "kv_cache_usage": 0.28,
                        "prefix_cache_hit_rate": 0.007507552643049313, "prompt_tokens": 8.128902e6,
                        "generation_tokens": 7.557572e6}),
])
def test_each_servers_metrics_read_into_one_vocabulary(text, server, quantities):
    scrape = reading(1.0, 200, text)
    assert scrape.schema == server and scrape.absent is None
    assert dict(scrape.quantities) == pytest.approx(quantities)


def test_histogram_buckets_are_left_out_and_label_sets_add_up():
    values = parse_metrics(vllm() + 'vllm:num_requests_running{engine="1",model_name="other"} 5\n')
    assert not any(name.endswith("_bucket") for name in values)
    assert values["vllm:num_requests_running"] == 5 and schema_for(values).name == "vllm"


@pytest.mark.parametrize("status, text, why", [
    (404, "Not Found", "the server has no /metrics (HTTP 404)"),
    (0, "ClientConnectorError: refused", "/metrics did not answer (ClientConnectorError: refused)"),
    (200, "process_cpu_seconds_total 12.5\n", "/metrics names no metrics of a known server"),
    (200, "<html>not prometheus</html>", "/metrics is not in the Prometheus text format"),
])
def test_a_server_without_usable_metrics_is_absent_with_the_reason(status, text, why):
    scrape = reading(1.0, status, text)
    assert scrape.schema is None and scrape.absent.startswith(why)
    summary = summarize([RoundTelemetry(scrape, scrape)])
    assert summary["absent"].startswith(why) and derived_values(summary) == {}


def test_a_case_summary_takes_gauges_over_samples_and_counter_changes_over_rounds():
    def at(t, **values):
        return reading(t, 200, vllm(**values))

    rounds = [RoundTelemetry(at(0, queries=100, hits=10, drafted=0), at(2, queries=300, hits=110, drafted=40, accepted=30),
                             (at(1, running=4, waiting=6, kv=0.7, queries=200, hits=60),), 0.5),
              RoundTelemetry(at(3, queries=300, hits=110, drafted=40, accepted=30),
                             at(5, queries=500, hits=210, drafted=80, accepted=50),
                             (at(4, running=2, waiting=1, kv=0.3),), 0.5)]
    summary = summarize(rounds)
    assert summary["running"] == {"max": 4, "mean": pytest.approx(1.0)} and summary["waiting"]["max"] == 6
    assert summary["counters"]["prefix_cache_queries"] == 400 and summary["counters"]["prefix_cache_hits"] == 200
    assert summary["prefix_cache_hit_rate"]["mean"] == 0.5 and summary["spec_acceptance_rate"] == 0.625
    assert derived_values(summary) == {"server_running_max": 4, "server_waiting_max": 6,
                                       "server_kv_cache_usage_max": 0.7, "server_prefix_cache_hit_rate": 0.5,
                                       "server_spec_acceptance_rate": 0.625}
