"""GPTQ through GPTQModel on CPU, for real, on a dummy-weight model: quantize, cache, load, and
checkpoints that are not what they claim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pytest_inferlab.device import CPU
from pytest_inferlab.engines import load_engine
from pytest_inferlab.engines.transformers_engine import weight_bytes
from pytest_inferlab.engines.in_process import log_probs
from pytest_inferlab.measure.fidelity import ReferenceLogProbs, compare, windows
from pytest_inferlab.optimizations.quant import QuantizationError, QuantSpec, quantize
from pytest_inferlab.optimizations.quant.gptqmodel_methods import calibration_examples, checkpoint_quant_config
from pytest_inferlab.engines.sources import resolve_model

pytest.importorskip("gptqmodel", reason="GPTQModel is not installed (make install puts it in .venv)")


@pytest.fixture(scope="module")
def tiny():
    engine = load_engine("transformers", resolve_model("dummy:tiny"), CPU)
    return engine.module, engine.tokenizer


@pytest.fixture(scope="module")
def gptq_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def quantized(tiny, gptq_cache):
    model, tokenizer = tiny
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INFERLAB_CACHE_DIR", str(gptq_cache))
        first = quantize(model, QuantSpec.of("gptq"), CPU, tokenizer)
        again = quantize(model, QuantSpec.of("gptq"), CPU, tokenizer)
    return first, again


def test_calibration_is_seeded_windows_of_the_shipped_text(tiny):
    _, tokenizer = tiny
    a = calibration_examples(tokenizer, samples=4, tokens=64, seed=0)
    assert a == calibration_examples(tokenizer, samples=4, tokens=64, seed=0)
    assert a != calibration_examples(tokenizer, samples=4, tokens=64, seed=1)
    assert [len(x["input_ids"]) for x in a] == [64] * 4 and all(x["attention_mask"] == [1] * 64 for x in a)


@pytest.mark.slow  # quantizes with GPTQModel (~90 s here)
def test_gptq_quantizes_once_then_loads_from_the_cache(tiny, quantized, gptq_cache):
    model, _ = tiny
    first, again = quantized
    assert first.facts["weight_bits"] == 4 and first.facts["group_size"] == 64
    assert first.facts["library"].startswith("GPTQModel ") and first.facts["kernels"]
    assert "quantize_s" in first.facts and "quantize_s" not in again.facts  # built once, then cached
    [folder] = (gptq_cache / "gptq").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["calibration.json", "logs", "quantized"]  # no fp copy left
    assert not (Path.cwd() / "logs").exists()  # GPTQModel's own log went into the cache, not the working dir
    assert json.loads((folder / "calibration.json").read_text())["samples"] == 32
    qproj = again.model.model.layers[0].self_attn.q_proj
    assert hasattr(qproj, "qweight") and qproj.qweight.dtype == torch.int32
    _, ref_bytes = weight_bytes(model)
    _, gptq_bytes = weight_bytes(again.model)
    assert gptq_bytes < ref_bytes
    ids = torch.randint(0, model.config.vocab_size, (200,), generator=torch.Generator().manual_seed(0)).tolist()
    text = windows(ids, 100)
    result = compare(ReferenceLogProbs(model, text), log_probs(again.model, text))
    assert result.kld_mean > 0 and result.top1_agreement > 0.5


@pytest.mark.slow  # needs the GPTQ checkpoint of the test above
def test_a_users_checkpoint_loads_and_one_that_is_not_gptq_is_refused(quantized, tmp_path, tiny):
    model, _ = tiny
    checkpoint = quantized[1].facts["cache"] + "/quantized"
    loaded = quantize(model, QuantSpec.of("gptq", checkpoint=checkpoint), CPU)
    assert loaded.facts["checkpoint"] == checkpoint and loaded.facts["weight_bits"] == 4

    with pytest.raises(QuantizationError, match=r"gptq checkpoint=.*nowhere: no such folder"):
        quantize(model, QuantSpec.of("gptq", checkpoint=str(tmp_path / "nowhere")), CPU)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(QuantizationError, match=r"not a GPTQ checkpoint \(it has no quantization config\)"):
        checkpoint_quant_config(plain)
    (plain / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "awq", "bits": 4}}))
    with pytest.raises(QuantizationError, match=r"says quant_method='awq'"):
        checkpoint_quant_config(plain)
    (plain / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "gptq", "bits": 4}}))
    with pytest.raises(QuantizationError, match=r"no \*\.safetensors weights"):
        checkpoint_quant_config(plain)
    (plain / "quantize_config.json").write_text("{not json")
    with pytest.raises(QuantizationError, match=r"gptq checkpoint=.*: .*quantize_config.json is unreadable"):
        checkpoint_quant_config(plain)


def test_unknown_settings_name_the_known_ones(tiny):
    model, tokenizer = tiny
    with pytest.raises(QuantizationError, match=r"unknown setting\(s\) \['bitz'\]; known: bits, group_size"):
        quantize(model, QuantSpec.of("gptq", bitz=3), CPU, tokenizer)


def test_weights_that_overflow_in_the_variant_are_a_clear_error(tiny):
    model, _ = tiny
    broken = load_engine("transformers", resolve_model("dummy:tiny"), CPU).module
    with torch.no_grad():
        broken.model.layers[1].mlp.up_proj.weight[0, 0] = 1e6  # beyond float16's 65504
    assert quantize(broken, QuantSpec.of("fp32"), CPU).model is not None
    with pytest.raises(QuantizationError, match=r"fp16 .*produced NaN/inf weights in model.layers.1.mlp.up_proj.weight"):
        quantize(broken, QuantSpec.of("fp16"), CPU)
