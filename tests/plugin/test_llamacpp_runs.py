"""GGUF ladder rungs through the fixtures: a real rung measured against transformers fp32 with its
fidelity from llama.cpp's logits; a model that is not a GGUF file skips every rung with the reason."""

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


@pytest.mark.slow
@pytest.mark.skipif(llamacpp_missing() is not None, reason=str(llamacpp_missing()))
def test_a_rung_is_measured_by_llama_cpp_against_transformers_fp32(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("INFERLAB_CACHE_DIR", str(tmp_path / "cache"))
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("--inferlab-rounds=3", "--inferlab-threads=2", "-p", "no:cacheprovider")
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
