"""llama.cpp as an engine and its GGUF quantization ladder, on the embedded SmolLM2 file.

Rung names, unreadable files and a missing llama-cpp-python are checked without it; the rest run
the real llama.cpp (built from its source package by ``make install``) on the real file."""

from __future__ import annotations

import pytest

from pytest_inferlab.device import CPU
from pytest_inferlab.engines.llamacpp_engine import LlamaCppEngine, LlamaCppSettings, LlamaCppUnavailable, llamacpp_missing
from pytest_inferlab.engines.sources import embedded_gguf_path, gguf_tensor_sizes, resolve_model
from pytest_inferlab.optimizations.quant.gguf_ladder import LadderError, check_rung, make_rung, read_gguf
from pytest_inferlab.run.trace import Request
from pytest_inferlab.run.workloads import prompt_texts
from pytest_inferlab.specs.core import SamplingSpec

needs_llamacpp = pytest.mark.skipif(llamacpp_missing() is not None, reason=str(llamacpp_missing()))
EMBEDDED = resolve_model("smollm2-135m")


def test_an_unknown_rung_names_the_closest_ones():
    assert check_rung("q4_k_m") == "Q4_K_M"
    with pytest.raises(LadderError, match=r"unknown GGUF rung 'Q4_KM' \(did you mean Q4_K_M"):
        check_rung("Q4_KM")


@pytest.mark.parametrize("content", [b"not a gguf file at all", None], ids=["not-gguf", "truncated"])
def test_a_file_that_is_not_whole_gguf_is_an_error_naming_it(tmp_path, content):
    path = tmp_path / "model.gguf"
    path.write_bytes(content if content is not None else embedded_gguf_path("smollm2-135m").read_bytes()[:100_000])
    with pytest.raises(LadderError, match=str(path)):
        read_gguf(path)


def test_without_llama_cpp_python_the_engine_names_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    assert "pip install -e '.[llamacpp]'" in llamacpp_missing()
    with pytest.raises(LlamaCppUnavailable, match="make install"):
        LlamaCppEngine.load(EMBEDDED, CPU)


def test_settings_refuse_impossible_values():
    with pytest.raises(ValueError, match="LlamaCppSettings.context must be >= 1"):
        LlamaCppSettings(context=0)


@pytest.fixture(scope="module")
def engine():
    if llamacpp_missing():
        pytest.skip(llamacpp_missing())
    loaded = LlamaCppEngine.load(EMBEDDED, CPU, LlamaCppSettings(threads=2))
    yield loaded
    loaded.close()


@needs_llamacpp
def test_prompts_are_the_same_token_ids_llama_cpp_itself_makes(engine):
    for text in prompt_texts("short_chat") + prompt_texts("code"):
        assert engine.native_tokens(text) == engine.encode(text, chat=False), text[:40]


@needs_llamacpp
def test_every_token_is_timestamped_and_counted_and_greedy_repeats(engine):
    ids = tuple(engine.encode(prompt_texts("short_chat")[0], chat=True))
    batch = [Request(0, ids, 12), Request(1, ids, 12)]
    first, second = engine.generate(batch, SamplingSpec())
    for trace in (first, second):
        assert trace.ok and trace.output_tokens == 12 and len(trace.chunk_times) == 12
        assert list(trace.chunk_times) == sorted(trace.chunk_times) and trace.chunk_times[0] > trace.t_send
    assert first.t_send == second.t_send and second.chunk_times[0] > first.chunk_times[-1]  # one at a time
    assert first.output_ids == second.output_ids  # greedy, and no reused prefix changes it
    facts = engine.info.facts["llamacpp"]
    assert facts["prefix_reuse"] is False and facts["threads"] == 2 and engine.info.engine == "llamacpp"
    params, nbytes = gguf_tensor_sizes(embedded_gguf_path("smollm2-135m"))
    assert engine.info.model_bytes == nbytes < params * 1  # Q4_1: well under a byte per parameter
    assert engine.info.facts["gguf_file_type"] == "MOSTLY_Q4_1"


@needs_llamacpp
def test_a_failed_request_is_data(engine):
    [trace] = engine.generate([Request(0, (10**9,), 4)], SamplingSpec())
    assert not trace.ok and trace.error


@needs_llamacpp
@pytest.mark.slow
def test_the_ladder_makes_rungs_llama_cpp_runs_with_their_bytes_and_the_requantization_warning(tmp_path):
    source = embedded_gguf_path("smollm2-135m")
    f32, q4 = make_rung(source, "F32", cache=tmp_path), make_rung(source, "Q4_K_M", cache=tmp_path)
    params, f32_bytes = gguf_tensor_sizes(f32.path)
    assert 134_000_000 < params < 135_000_000 and f32_bytes == params * 4
    _, q4_bytes = gguf_tensor_sizes(q4.path)
    assert q4_bytes < 0.4 * f32_bytes
    assert "bounded by the source's" in q4.facts["requantized_from"] and q4.facts["source_file_type"] == "MOSTLY_Q4_1"
    assert make_rung(source, "Q4_K_M", cache=tmp_path).path == q4.path  # cached: made once
    rung = LlamaCppEngine.load(EMBEDDED, CPU, LlamaCppSettings(threads=2), path=q4.path)
    try:
        assert rung.info.model_bytes == q4_bytes and rung.info.facts["gguf_file_type"] == "MOSTLY_Q4_K_M"
        [trace] = rung.generate([Request(0, tuple(rung.encode("Say hello.", chat=True)), 6)], SamplingSpec())
        assert trace.ok and trace.output_tokens == 6
    finally:
        rung.close()


@needs_llamacpp
@pytest.mark.slow
def test_llama_cpp_f32_and_transformers_fp32_agree_on_greedy_tokens(tmp_path, capsys):
    """The same weights (the Q4_1 file dequantized) in two runtimes: the greedy tokens of the shipped
    chat prompts agree (token by token until the first difference, reported)."""
    from pytest_inferlab.engines import load_engine

    f32 = make_rung(embedded_gguf_path("smollm2-135m"), "F32", cache=tmp_path)
    llama = LlamaCppEngine.load(EMBEDDED, CPU, LlamaCppSettings(threads=2), path=f32.path)
    reference = load_engine("transformers", EMBEDDED, CPU)
    agreed = total = 0
    try:
        for index, text in enumerate(prompt_texts("short_chat")):
            request = Request(index, tuple(reference.encode(text, chat=True)), 16)
            [ours] = llama.generate([request], SamplingSpec())
            [theirs] = reference.generate([request], SamplingSpec())
            prefix = next((i for i, (a, b) in enumerate(zip(ours.output_ids, theirs.output_ids)) if a != b), 16)
            agreed, total = agreed + prefix, total + 16
    finally:
        llama.close()
    with capsys.disabled():
        print(f"\nllama.cpp F32 vs transformers fp32: {agreed}/{total} greedy tokens agree before a first difference")
    assert agreed >= 0.9 * total
