"""A real run on the embedded SmolLM2-135M (GGUF Q4_1, dequantized to float32), few tokens."""

import pytest

from pytest_inferlab.record.record import load_record

# two torch threads on the embedded model: beside another xdist worker it ran 3x slower
pytestmark = [pytest.mark.slow, pytest.mark.alone]


def test_embedded_model_run_gives_plausible_numbers(pytester):
    pytester.makeconftest("""
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 2, "output_tokens": 6}
""")
    pytester.makepyfile(test_suite="""
import pytest

@pytest.mark.parametrize("workload", ["short-chat", "long-context"], indirect=True)
def test_latency(lab, model, workload):
    lab.measure(model, workload, batch_size=2)
""")
    result = pytester.runpytest_subprocess("--inferlab-rounds=2", "--inferlab-threads=2", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*loading smollm2-135m on cpu*", "test_latency[[]short-chat[]] * smollm2-135m *"])
    [run] = (pytester.path / ".inferlab" / "runs").iterdir()
    recs = {r["params"]["workload"]: r for r in map(load_record, run.glob("*.json"))}
    chat, long = recs["short-chat"], recs["long-context"]
    engine = chat["engine"]
    assert 134_000_000 < engine["parameters"] < 135_000_000  # SmolLM2-135M: 134.5M parameters
    assert engine["model_bytes"] == engine["parameters"] * 4  # float32, embeddings tied
    assert engine["facts"]["gguf_file_type"] == "MOSTLY_Q4_1"
    assert chat["environment"]["threads"] == 2
    for rec in (chat, long):
        m = rec["measurements"]
        assert 3 < m["tpot_ms"]["value"] < 1_000, m["tpot_ms"]
        assert m["ttft_ms"]["value"] > 0 and m["output_tok_per_s"]["value"] > 0.5
        assert m["peak_mem_bytes"]["value"] > engine["model_bytes"]
    assert 1_000 <= long["measurements"]["input_tokens"]["value"] <= 2_000  # "long context": 1-2k tokens
    assert 20 <= chat["measurements"]["input_tokens"]["value"] <= 80
    assert long["measurements"]["ttft_ms"]["value"] > chat["measurements"]["ttft_ms"]["value"]  # prefill grows
