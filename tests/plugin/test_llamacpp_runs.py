"""GGUF ladder rungs through the fixtures: a real rung measured against transformers fp32 with its
fidelity from llama.cpp's logits; a model that is not a GGUF file skips every rung with the reason.
These runs stay subprocesses: llama-cpp-python leaves /dev/null open (a ResourceWarning this test run
turns into an error), which an in-process run would inherit."""

import json

import pytest

from pytest_inferlab.engines.llamacpp_engine import llamacpp_missing

SUITE = """
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 1, "output_tokens": 6}

@pytest.mark.parametrize("quantization", ["gguf-q8_0"], indirect=True)
def test_rung(lab, model, quantized_model, workload):
    lab.measure(quantized_model, workload, reference=model)
"""


def test_a_model_that_is_not_gguf_skips_every_rung_with_the_reason(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("--inferlab-model=dummy:tiny", "-p", "no:cacheprovider", "-rs")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*SKIPPED*gguf-q8_0 with model dummy:tiny: the ladder is made from a GGUF file*"])


def test_an_unknown_rung_is_a_usage_error_with_did_you_mean(pytester):
    pytester.makepyfile(test_suite=SUITE.replace("gguf-q8_0", "gguf-q8"))
    result = pytester.runpytest_subprocess("--inferlab-model=dummy:tiny", "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*gguf-q8*gguf-q8_0*"])


@pytest.mark.slow  # no close timing (at most a paired ratio far from 1): one llama.cpp thread, beside another worker
@pytest.mark.skipif(llamacpp_missing() is not None, reason=str(llamacpp_missing()))
def test_a_rung_is_measured_by_llama_cpp_against_transformers_fp32(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("INFERLAB_CACHE_DIR", str(tmp_path / "cache"))
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("--inferlab-rounds=3", "--inferlab-threads=1", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    [path] = (pytester.path / ".inferlab" / "runs").rglob("*test_rung*.json")
    record = json.loads(path.read_text())
    assert record["engine"]["engine"] == "llamacpp"
    facts = record["engine"]["facts"]
    assert facts["gguf_file_type"] == "MOSTLY_Q8_0" and facts["llamacpp"]["prefix_reuse"] is False
    assert "bounded by the source's" in facts["quantization"]["requantized_from"]
    m = record["measurements"]
    assert m["speedup_vs_reference"]["ci95"] and m["speedup_vs_reference"]["value"] > 1  # llama.cpp Q8_0 vs fp32
    assert 0 < m["kld_mean"]["value"] < 0.1 and m["top1_agreement"]["value"] > 0.9  # Q8_0 of the same weights
    assert m["model_bytes"]["value"] < 0.3 * 134_515_008 * 4


SERVED = """
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 2, "output_tokens": 6}

def test_served(lab, server_model, workload):
    lab.measure(server_model, workload, batching="server", load="closed:2")
"""


def test_an_unknown_server_kind_is_a_usage_error_with_did_you_mean(pytester):
    pytester.makepyfile(test_suite=SERVED)
    result = pytester.runpytest_subprocess("--inferlab-server=llama", "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--inferlab-server*llama*llamacpp*"])


def test_the_llama_cpp_server_skips_a_model_that_is_not_gguf_with_the_reason(pytester):
    pytester.makepyfile(test_suite=SERVED)
    result = pytester.runpytest_subprocess("--inferlab-server=llamacpp", "--inferlab-model=dummy:tiny",
                                           "-p", "no:cacheprovider", "-rs")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*SKIPPED*--inferlab-server=llamacpp serves a GGUF file*dummy:tiny*"])


@pytest.mark.slow  # no close timing (at most a paired ratio far from 1): one llama.cpp thread, beside another worker
@pytest.mark.skipif(llamacpp_missing() is not None, reason=str(llamacpp_missing()))
def test_the_serving_cases_measure_llama_cpp_s_server_when_asked(pytester):
    pytester.makepyfile(test_suite=SERVED)
    result = pytester.runpytest_subprocess("--inferlab-server=llamacpp", "--inferlab-rounds=1", "--inferlab-warmup=0",
                                           "--inferlab-threads=1", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    [path] = (pytester.path / ".inferlab" / "runs").rglob("*test_served*.json")
    record = json.loads(path.read_text())
    assert record["engine"]["engine"] == "openai-server"
    assert record["engine"]["facts"]["local_server"]["kind"] == "llamacpp"
    assert record["conditions"]["server"]["tokens_from_length"] == 2  # no usage: finish_reason=length counts
    assert record["measurements"]["failed_requests"]["value"] == 0


DRAFTING = """
import pytest
from pytest_inferlab import SpeculativeSpec

@pytest.fixture
def workload_overrides():
    return {"count": 1, "output_tokens": 16}

@pytest.mark.parametrize("workload", ["copy-edit"], indirect=True)
@pytest.mark.parametrize("speculative", [SpeculativeSpec.of("prompt-lookup", num_tokens=8),
                                         SpeculativeSpec.of("draft", quant="gguf-q4_0", num_tokens=3),
                                         SpeculativeSpec.of("early-exit", layer=15)], indirect=True,
                         ids=["lookup", "q4_0-draft", "early-exit"])
@pytest.mark.parametrize("quantization", ["gguf-f32"], indirect=True)
def test_drafting(lab, quantized_model, speculative_model, workload, speculative):
    lab.measure(speculative_model, workload)
"""


@pytest.mark.slow  # no close timing (at most a paired ratio far from 1): one llama.cpp thread, beside another worker
@pytest.mark.skipif(llamacpp_missing() is not None, reason=str(llamacpp_missing()))
def test_speculative_pairs_compose_with_a_rung_on_llama_cpp(pytester):
    pytester.makepyfile(test_suite=DRAFTING)
    result = pytester.runpytest_subprocess("--inferlab-rounds=2", "--inferlab-threads=1", "-p", "no:cacheprovider",
                                           "-rs")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*SKIPPED*early-exit on llama.cpp*", "*2 passed, 1 skipped*"])
    for path in (pytester.path / ".inferlab" / "runs").rglob("*test_drafting*.json"):
        record = json.loads(path.read_text())
        assert record["engine"]["engine"] == "llamacpp" and record["engine"]["facts"]["gguf_file_type"] == "ALL_F32"
        check = record["conditions"]["speculative"]
        assert check["exact"] or check["first_mismatch"]["near_tie"]
        m = record["measurements"]
        assert m["tokens_per_target_forward"]["value"] >= 1 and m["speculative_speedup"]["ci95"]
