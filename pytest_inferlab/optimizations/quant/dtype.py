"""Dtype casts: the simplest variants (fp32, bf16, fp16), and the baseline every other is judged by."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pytest_inferlab.device import Device
from pytest_inferlab.ground.child import Progress
from pytest_inferlab.optimizations.quant import MethodDefaults, QuantSpec, Variant, quant_methods


@dataclass(frozen=True, slots=True)
class DtypeCast(MethodDefaults):
    dtype_name: str

    def unsupported(self, device: Device) -> str | None:
        import torch

        dtype = getattr(torch, self.dtype_name)
        if device.is_cuda:
            if dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
                return "this GPU has no bfloat16 support"
            return None
        try:  # CPU kernels for half types exist in current torch; check the matmul the model needs
            a = torch.ones(4, 4, dtype=dtype)
            (a @ a).sum().item()
        except RuntimeError as exc:
            return f"torch on CPU cannot multiply {self.dtype_name} matrices ({exc})"
        return None

    def apply(self, reference: Any, spec: QuantSpec, device: Device, tokenizer: Any = None,
              progress: Progress | None = None) -> Variant:
        import torch

        dtype = getattr(torch, self.dtype_name)
        model = copy.deepcopy(reference).to(dtype=dtype)
        return Variant(model, {"dtype": self.dtype_name, "weight_bits": torch.finfo(dtype).bits})


for _name, _dtype in (("fp32", "float32"), ("bf16", "bfloat16"), ("fp16", "float16")):
    quant_methods.register(_name, DtypeCast(_dtype))
