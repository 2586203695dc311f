"""torchao weight (and activation) quantization: int8 weight-only, int8 dynamic activation +
int8 weight, int4 weight-only, each in the layout the device runs; float8 weight-only and float8
dynamic activation + weight on GPUs that have float8 matmuls (compute capability >= 8.9).

On CPU (torchao 0.18) int4 runs only as ``IntxWeightOnlyConfig`` with the ``unpacked_to_int8``
layout: int4 values and accuracy, int8 storage (``model_bytes`` shows it). Its packed CPU layouts
are for ARM (KleidiAI) and the tinygemm/plain int4 layouts need CUDA. On CUDA int4 uses
``Int4WeightOnlyConfig`` (``tile_packed_to_4d``, bfloat16 models).
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from typing import Any

from pytest_inferlab.device import Device
from pytest_inferlab.ground.child import Progress
from pytest_inferlab.optimizations.quant import MethodDefaults, QuantSpec, Variant, quant_methods

INSTALL_HINT = "torchao is not installed: pip install 'pytest-inferlab[quant]' (or pip install torchao)"


def _config(kind: str, device: Device, group_size: int) -> tuple[Any, dict[str, Any]]:
    import torch
    from torchao import quantization as q

    if kind == "int8-weight":
        return q.Int8WeightOnlyConfig(), {"weight_bits": 8, "activation_bits": None, "layout": "int8 per-channel"}
    if kind == "int8-dynamic":
        return q.Int8DynamicActivationInt8WeightConfig(), {"weight_bits": 8, "activation_bits": 8,
                                                           "layout": "int8 per-channel, dynamic per-token activations"}
    if kind == "fp8-weight":
        return q.Float8WeightOnlyConfig(), {"weight_bits": 8, "activation_bits": None, "layout": "float8_e4m3 per-channel"}
    if kind == "fp8-dynamic":
        return (q.Float8DynamicActivationFloat8WeightConfig(granularity=q.PerRow()),
                {"weight_bits": 8, "activation_bits": 8, "layout": "float8_e4m3 per-row, dynamic activations"})
    if device.is_cuda:
        return (q.Int4WeightOnlyConfig(group_size=group_size, int4_packing_format="tile_packed_to_4d"),
                {"weight_bits": 4, "activation_bits": None, "layout": f"tile_packed_to_4d, group {group_size}"})
    return (q.IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=q.PerGroup(group_size)),
            {"weight_bits": 4, "activation_bits": None,
             "layout": f"unpacked_to_int8 (int4 values in int8 storage), group {group_size}"})


def _fp8_unsupported(device: Device) -> str | None:
    """float8 matmuls (torch._scaled_mm) need an Ada or Hopper GPU, compute capability >= 8.9."""
    if not device.is_cuda:
        return "float8 matmuls need a CUDA GPU with compute capability >= 8.9 (Ada, Hopper or newer)"
    import torch

    capability = torch.cuda.get_device_capability(device.index)
    if capability < (8, 9):
        return f"float8 matmuls need compute capability >= 8.9; this GPU has {capability[0]}.{capability[1]}"
    return None


@dataclass(frozen=True, slots=True)
class TorchaoMethod(MethodDefaults):
    kind: str
    default_group_size: int = 32

    def unsupported(self, device: Device) -> str | None:
        if importlib.util.find_spec("torchao") is None:
            return INSTALL_HINT
        if self.kind.startswith("fp8"):
            return _fp8_unsupported(device)
        return None

    def apply(self, reference: Any, spec: QuantSpec, device: Device, tokenizer: Any = None,
              progress: Progress | None = None) -> Variant:
        import torch
        import torchao
        from torchao.quantization import quantize_

        group_size = int(dict(spec.settings).get("group_size", self.default_group_size))
        config, facts = _config(self.kind, device, group_size)
        model = copy.deepcopy(reference)
        if self.kind == "int4-weight" and device.is_cuda:
            model = model.to(torch.bfloat16)
        # A tied lm_head shares the embedding's storage: quantizing it would untie it and add bytes.
        tied = bool(getattr(model.config, "tie_word_embeddings", False))
        quantize_(model, config, filter_fn=lambda module, fqn: isinstance(module, torch.nn.Linear)
                  and not (tied and fqn.endswith("lm_head")))
        return Variant(model, {**facts, "library": f"torchao {torchao.__version__}", "config": type(config).__name__,
                               "lm_head": "kept in the model dtype (tied to the embeddings)" if tied else "quantized"})


for _kind in ("int8-weight", "int8-dynamic", "int4-weight", "fp8-weight", "fp8-dynamic"):
    quant_methods.register(_kind, TorchaoMethod(_kind))
