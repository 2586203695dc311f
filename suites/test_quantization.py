"""Quantized variants of the model x batch sizes: speed, memory, fidelity to the unquantized model
and lm-eval task accuracy, one record per case. Each variant's rounds alternate with the unquantized
model's (``reference=model``), so its speed ratio comes with a 95% interval from paired rounds, not
from two cases measured minutes apart. Methods the device cannot run skip at collection with the
reason. The run ends with the trade-off table (speed vs KLD vs bytes, Pareto front) and writes it as
a plot, pareto.png, next to the records."""

import pytest

CPU_METHODS = ["fp32", "bf16", "fp16", "int8-weight", "int8-dynamic", "int4-weight", "gptq", "gguf"]
GPU_METHODS = ["awq", "bnb-nf4", "bnb-int8", "fp8-weight", "fp8-dynamic"]  # skip on CPU, with the reason
EVAL_TASKS = ("inferlab_mc", "inferlab_ppl")  # shipped with the project (pytest_inferlab/data/tasks)


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("quantization", CPU_METHODS + GPU_METHODS, indirect=True)
def test_quantized(lab, model, quantized_model, workload, quantization, batch_size):
    record = lab.measure(quantized_model, workload, batch_size=batch_size, evals=EVAL_TASKS, reference=model)
    assert record["output_tok_per_s"] > 0
    assert 0 <= record["inferlab_mc.acc"] <= 1
    if quantization.method not in ("fp32", "gguf"):
        assert record["kld_mean"] > 0
