"""bitsandbytes 4-bit NF4 and 8-bit (LLM.int8) weights, loaded through transformers'
``BitsAndBytesConfig``. GPU methods here: the project pins no bitsandbytes CPU backend."""

from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_inferlab.device import Device
from pytest_inferlab.ground.child import Progress
from pytest_inferlab.optimizations.quant import MethodDefaults, QuantSpec, Variant, quant_methods
from pytest_inferlab.optimizations.quant.gptqmodel_methods import save_plain_checkpoint

INSTALL_HINT = "bitsandbytes is not installed: pip install bitsandbytes (a CUDA machine)"


@dataclass(frozen=True, slots=True)
class BitsAndBytesMethod(MethodDefaults):
    bits: int  # 4 (NF4) or 8 (LLM.int8)

    def unsupported(self, device: Device) -> str | None:
        if not device.is_cuda:
            return "bitsandbytes kernels run on CUDA devices only here"
        if importlib.util.find_spec("bitsandbytes") is None:
            return INSTALL_HINT
        return None

    def apply(self, reference: Any, spec: QuantSpec, device: Device, tokenizer: Any = None,
              progress: Progress | None = None) -> Variant:
        import bitsandbytes
        import torch
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        if self.bits == 4:
            config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                        bnb_4bit_compute_dtype=torch.bfloat16)
        else:
            config = BitsAndBytesConfig(load_in_8bit=True)
        with tempfile.TemporaryDirectory(prefix="inferlab-bnb-") as folder:
            save_plain_checkpoint(reference, None, Path(folder))
            model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=config,
                                                         device_map={"": device.index})
        return Variant(model, {"library": f"bitsandbytes {bitsandbytes.__version__}", "weight_bits": self.bits,
                               "activation_bits": None, "layout": "nf4, bf16 compute" if self.bits == 4 else "LLM.int8"})


quant_methods.register("bnb-nf4", BitsAndBytesMethod(4))
quant_methods.register("bnb-int8", BitsAndBytesMethod(8))
