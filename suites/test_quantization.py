"""Quantized variants of the model: speed, memory and fidelity to the unquantized model, one
record per variant. Methods the device cannot run skip at collection with the reason."""

import pytest

METHODS = ["fp32", "bf16", "fp16", "int8-weight", "int8-dynamic", "int4-weight"]


@pytest.mark.parametrize("quantization", METHODS, indirect=True)
def test_quantized(lab, quantized_model, workload, quantization):
    record = lab.measure(quantized_model, workload)
    assert record.measurements["output_tok_per_s"].value > 0
    if quantization.method != "fp32":
        assert record.measurements["kld_mean"].value > 0
