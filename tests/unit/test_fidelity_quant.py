"""Fidelity to the reference and the dtype variants, on a real (dummy-weight) transformers model."""

from __future__ import annotations

import math

import pytest
import torch

from pytest_inferlab.device import CPU
from pytest_inferlab.engines import load_engine
from pytest_inferlab.engines.in_process import log_probs
from pytest_inferlab.measure.fidelity import ReferenceLogProbs, compare, windows
from pytest_inferlab.optimizations.quant import QuantSpec, quant_methods, quantize
from pytest_inferlab.registry import UnknownNameError
from pytest_inferlab.engines.sources import resolve_model


@pytest.fixture(scope="module")
def reference():
    engine = load_engine("transformers", resolve_model("dummy:tiny"), CPU)
    ids = torch.randint(0, engine.info.vocab_size, (300,), generator=torch.Generator().manual_seed(0)).tolist()
    return engine.module, windows(ids, 128)


def test_windows_cut_the_text_and_drop_a_tail_that_predicts_nothing():
    assert [len(w) for w in windows(list(range(261)), 128)] == [128, 128, 5]
    assert [len(w) for w in windows(list(range(257)), 128)] == [128, 128]
    with pytest.raises(ValueError, match="window=1"):
        windows([1, 2, 3], 1)


def test_the_reference_against_itself_is_perfect(reference):
    model, text = reference
    ref = ReferenceLogProbs(model, text)
    same = compare(ref, log_probs(model, text))
    assert same.kld_mean == pytest.approx(0.0, abs=1e-6) and same.top1_agreement == 1.0
    assert same.positions == 127 + 127 + 43 and same.ppl_delta_pct == pytest.approx(0.0, abs=1e-9)


def test_a_bf16_variant_drifts_a_little_and_leaves_the_reference_untouched(reference):
    model, text = reference
    before = {k: v.clone() for k, v in model.state_dict().items()}
    variant = quantize(model, QuantSpec.of("bf16"), CPU)
    assert variant.facts == {"dtype": "bfloat16", "weight_bits": 16}
    assert next(variant.model.parameters()).dtype == torch.bfloat16
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    result = compare(ReferenceLogProbs(model, text), log_probs(variant.model, text))
    assert 0 < result.kld_mean < 0.05 and result.top1_agreement > 0.8
    assert math.isfinite(result.ppl_variant)


def test_nan_weights_are_a_clear_error(reference):
    model, text = reference
    broken = quantize(model, QuantSpec.of("fp32"), CPU).model
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="not finite"):
        compare(ReferenceLogProbs(model, text), log_probs(broken, text))


def test_methods_are_a_registry_with_did_you_mean_and_stable_spec_ids():
    assert {"fp32", "bf16", "fp16"} <= set(quant_methods.names())
    with pytest.raises(UnknownNameError, match="bf16"):
        quant_methods.get("bf61")
    assert QuantSpec.of("fp16").spec_id == QuantSpec.of("fp16").spec_id != QuantSpec.of("bf16").spec_id
    assert quant_methods.get("fp32").unsupported(CPU) is None


@pytest.mark.parametrize("method, bits, max_bytes_ratio", [
    ("int8-weight", 8, 0.40), ("int8-dynamic", 8, 0.40), ("int4-weight", 4, 0.40),
])
def test_torchao_variants_run_on_cpu_shrink_the_linear_weights_and_stay_close(reference, method, bits, max_bytes_ratio):
    from pytest_inferlab.engines.transformers_engine import weight_bytes

    model, text = reference
    variant = quantize(model, QuantSpec.of(method), CPU)
    assert variant.facts["weight_bits"] == bits and variant.facts["library"].startswith("torchao ")
    layer = variant.model.model.layers[0].self_attn.q_proj.weight
    assert type(layer).__name__ != "Parameter" or type(layer.data).__name__ != "Tensor"  # a torchao tensor
    linear_ref = sum(p.numel() * 4 for n, p in model.named_parameters() if "layers" in n and n.endswith("proj.weight"))
    _, total_ref = weight_bytes(model)
    _, total_var = weight_bytes(variant.model)
    saved = total_ref - total_var
    assert saved > (1 - max_bytes_ratio) * linear_ref  # int8 storage: linear weights at ~1/4 of fp32 or less
    result = compare(ReferenceLogProbs(model, text), log_probs(variant.model, text))
    assert 0 < result.kld_mean < (0.05 if bits == 8 else 0.5) and result.top1_agreement > 0.5


def test_the_fidelity_table_runs_every_method(capsys):
    from fidelity_table import main

    cheap = [m for m in quant_methods.names() if m != "gptq"]  # GPTQ has its own test (test_gptq.py)
    main(["--model", "dummy:tiny", "--window", "64", "--methods", *cheap])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model=dummy:tiny tokens=")
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert set(rows) == set(cheap)
    assert rows["fp32"][1] == "1.00" and float(rows["fp32"][2]) == 0.0
    assert " ".join(rows["gguf"]).startswith("skipped: gguf with model dummy:tiny: the model is not a GGUF file")
    assert " ".join(rows["fp8-weight"]).startswith("skipped: fp8-weight on cpu: float8 matmuls need a CUDA GPU")
