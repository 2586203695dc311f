"""llama.cpp as an engine and its GGUF quantization ladder, on the embedded SmolLM2 file.

Rung names, unreadable files and a missing llama-cpp-python are checked without it; the rest run
the real llama.cpp (built from its source package by ``make install``) on the real file."""

from __future__ import annotations

import pytest

from pytest_inferlab.device import CPU
from pytest_inferlab.engines.llamacpp_engine import LlamaCppEngine, LlamaCppSettings, LlamaCppUnavailable, llamacpp_missing
from pytest_inferlab.engines.sources import embedded_gguf_path, gguf_tensor_sizes, resolve_model
from pytest_inferlab.optimizations.quant.gguf_ladder import LadderError, check_rung, make_rung, read_gguf
from pytest_inferlab.ground.trace import Request
from pytest_inferlab.run.workloads import prompt_texts
from pytest_inferlab.specs.core import SamplingSpec

# llama.cpp's OpenMP threads spin: beside another worker a 6 s test on two threads took 82 s. The tests on
# the module's two-thread engine, and the server's, run alone; the slow ones, which time nothing, load their
# own llama.cpp on one thread (no spinning sibling) and run on both cores beside another worker.
needs_llamacpp = pytest.mark.skipif(llamacpp_missing() is not None, reason=str(llamacpp_missing()))
ONE_THREAD = LlamaCppSettings(threads=1)
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
@pytest.mark.alone
def test_prompts_are_the_same_token_ids_llama_cpp_itself_makes(engine):
    for text in prompt_texts("short_chat") + prompt_texts("code"):
        assert engine.native_tokens(text) == engine.encode(text, chat=False), text[:40]


@needs_llamacpp
@pytest.mark.alone
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
@pytest.mark.slow  # a second Llama on the file
def test_with_prefix_reuse_the_reused_prompt_tokens_are_counted_and_without_none():
    plain = LlamaCppEngine.load(EMBEDDED, CPU, ONE_THREAD)
    reusing = LlamaCppEngine.load(EMBEDDED, CPU, LlamaCppSettings(threads=1, prefix_reuse=True))
    try:
        shared = tuple(plain.encode(prompt_texts("long_context")[0], chat=False))[:48]
        batch = [Request(0, shared + (1000, 1001), 2), Request(1, shared + (1002,), 2)]
        assert [t.cached_tokens for t in plain.generate(batch, SamplingSpec())] == [0, 0]
        first, second = reusing.generate(batch, SamplingSpec())
        assert (first.cached_tokens, second.cached_tokens) == (0, 48)
        assert (first.output_ids, second.output_ids) == tuple(t.output_ids for t in plain.generate(batch, SamplingSpec()))
    finally:
        reusing.close()
        plain.close()


@needs_llamacpp
@pytest.mark.alone
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
    rung = LlamaCppEngine.load(EMBEDDED, CPU, ONE_THREAD, path=q4.path)
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
    llama = LlamaCppEngine.load(EMBEDDED, CPU, ONE_THREAD, path=f32.path)
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


# ---- speculative decoding on llama.cpp ---------------------------------------------------------
def _pairs_of(drafting, requests, rounds=2):
    from pytest_inferlab.measure.speculative_pairs import SpeculativePairs

    pairs = SpeculativePairs(drafting)
    for done in range(rounds):
        pairs.round(requests, SamplingSpec(), done, warm=False)
    return pairs.measurements(SamplingSpec())


@needs_llamacpp
@pytest.mark.alone
def test_prompt_lookup_on_llama_cpp_is_counted_and_keeps_the_targets_greedy_output(engine):
    from pytest_inferlab.optimizations.speculative import SpeculativeSpec, drafters

    spec = SpeculativeSpec.of("prompt-lookup", num_tokens=8, max_ngram=2)
    drafting = engine.drafting_with(spec, drafters.get("prompt-lookup"), None)
    try:
        requests = [Request(i, tuple(engine.encode(text, chat=True)), 24)
                    for i, text in enumerate(prompt_texts("copy_edit")[:2])]
        found, check = _pairs_of(drafting, requests)
        assert drafting.info.speculative == spec and drafting.without_assist() is engine
        assert len(drafting.assist_log) == 4  # one usage per drafted request
        usage = drafting.assist_log[0]
        assert usage.proposed > 0 and 0 < usage.target_forwards < 24 and 0 < usage.draft_s < usage.seconds
        assert found["tokens_per_target_forward"].value > 1  # the copy-edit prompt is copied from
        assert 0 < found["acceptance_rate"].value <= 1 and found["speculative_speedup"].ci95
        mismatch = check["first_mismatch"]
        assert check["exact"] or mismatch["near_tie"], check  # batch-shape rounding may flip a near tie only
    finally:
        drafting.close()


@needs_llamacpp
@pytest.mark.alone
def test_methods_llama_cpp_cannot_run_skip_or_fail_with_the_reason(engine):
    from pytest_inferlab.optimizations.speculative import (SpeculativeConfigError, SpeculativeSpec,
                                                           SpeculativeUnsupported, drafters)

    with pytest.raises(SpeculativeUnsupported, match="early-exit on llama.cpp: llama.cpp cannot stop"):
        drafters.get("early-exit").llamacpp_draft(SpeculativeSpec.of("early-exit"), engine, None)
    with pytest.raises(SpeculativeConfigError, match="layers= truncates a torch module"):
        drafters.get("draft").llamacpp_draft(SpeculativeSpec.of("draft", layers=6), engine, engine)

    class TorchDraft:
        info = type("Info", (), {"engine": "transformers", "model": EMBEDDED})()

    with pytest.raises(SpeculativeConfigError, match="name a GGUF rung as its quant"):
        drafters.get("draft").llamacpp_draft(SpeculativeSpec.of("draft"), engine, TorchDraft())


@needs_llamacpp
@pytest.mark.slow
def test_a_lower_rung_drafts_for_the_f32_rung_exactly(tmp_path):
    from pytest_inferlab.optimizations.speculative import SpeculativeSpec, drafters

    source = embedded_gguf_path("smollm2-135m")
    target = LlamaCppEngine.load(EMBEDDED, CPU, ONE_THREAD, path=make_rung(source, "F32").path)
    draft = LlamaCppEngine.load(EMBEDDED, CPU, ONE_THREAD, path=make_rung(source, "Q4_0").path)
    spec = SpeculativeSpec.of("draft", quant="gguf-q4_0", num_tokens=3)
    drafting = target.drafting_with(spec, drafters.get("draft"), draft)
    try:
        requests = [Request(i, tuple(target.encode(text, chat=True)), 24)
                    for i, text in enumerate(prompt_texts("short_chat")[:2])]
        found, check = _pairs_of(drafting, requests)
        assert check["exact"] or check["first_mismatch"]["near_tie"], check
        assert 0.2 < found["acceptance_rate"].value <= 1  # measured 0.55 on short chat: Q4_0 agrees often
        assert found["tokens_per_target_forward"].value > 1.3
        assert drafting.info.facts["speculative_draft_file"] == "model.gguf"
    finally:
        for engine in (drafting, draft, target):
            engine.close()


# ---- lm-eval on llama.cpp ----------------------------------------------------------------------
@needs_llamacpp
@pytest.mark.alone
def test_lm_eval_scores_a_gguf_file_with_llama_cpp_logits(engine):
    from pytest_inferlab.measure.evals import evaluate_lm

    with engine.lm_eval_model("cpu") as lm:
        [(ll, greedy)] = lm._loglikelihood_tokens([(None, engine.encode("The capital of France is", False),
                                                    engine.encode(" Paris", False))])
        results = evaluate_lm(lm, ["inferlab_mc"], limit=6)
    assert ll < 0 and greedy in (True, False)
    result = results["inferlab_mc"]
    assert len(result.items) == 6 and 0 <= result.metrics["acc"] <= 1


@needs_llamacpp
@pytest.mark.slow
def test_lm_eval_on_llama_cpp_agrees_with_transformers_on_the_same_weights(capsys):
    """The Q4_1 file scored by llama.cpp and, dequantized, by transformers: measured 40/40 items alike
    and byte perplexity within 0.2% (2.358 vs 2.353)."""
    from pytest_inferlab.engines import load_engine
    from pytest_inferlab.measure.evals import evaluate_lm

    reference = load_engine("transformers", EMBEDDED, CPU)
    engine = LlamaCppEngine.load(EMBEDDED, CPU, ONE_THREAD)
    scored = {}
    try:
        for name, which in (("llamacpp", engine), ("transformers", reference)):
            with which.lm_eval_model("cpu") as lm:
                scored[name] = evaluate_lm(lm, ["inferlab_mc", "inferlab_ppl"], limit=20)
    finally:
        engine.close()
    ours, theirs = scored["llamacpp"], scored["transformers"]
    alike = sum(a == b for a, b in zip(ours["inferlab_mc"].items, theirs["inferlab_mc"].items))
    ratio = ours["inferlab_ppl"].metrics["byte_perplexity"] / theirs["inferlab_ppl"].metrics["byte_perplexity"]
    with capsys.disabled():
        print(f"\nlm-eval llama.cpp vs transformers: {alike}/20 items alike, byte perplexity ratio {ratio:.4f}")
    assert alike >= 18 and abs(ratio - 1) < 0.02


# ---- llama.cpp's OpenAI-compatible server ------------------------------------------------------
@needs_llamacpp
@pytest.mark.alone
def test_the_llama_cpp_server_streams_counted_tokens_and_stops_by_its_process_group():
    import dataclasses
    import os

    from pytest_inferlab.engines.local_server import LocalServer
    from pytest_inferlab.engines.openai_engine import OpenAIServerEngine
    from pytest_inferlab.engines.sources import load_tokenizer
    from pytest_inferlab.run.workloads import materialize
    from pytest_inferlab.specs.workloads import workloads

    server = LocalServer(str(embedded_gguf_path("smollm2-135m")), "llamacpp", threads=2).start()
    try:
        assert server.facts["kind"] == "llamacpp" and server.facts["metrics"] is None
        client = OpenAIServerEngine(server.url, server.served, EMBEDDED, load_tokenizer(EMBEDDED),
                                    server_facts=server.facts)
        requests = materialize(dataclasses.replace(workloads.get("short-chat"), count=2, output_tokens=12),
                               client.encode, client.info.vocab_size)
        traces = client.generate(requests, SamplingSpec())
        assert all(t.ok for t in traces), [t.error for t in traces]
        for trace in traces:  # exactly max_tokens, known from finish_reason=length (no usage sent)
            assert trace.output_tokens == 12 and list(trace.chunk_times) == sorted(trace.chunk_times)
        assert client.stats["tokens_from_length"] == 2 and client.info.facts["local_server"]["kind"] == "llamacpp"
        pid = server.process.pid
    finally:
        server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
