"""GGUF: a GGUF file is itself a quantized variant (the embedded model is Q4_1).

PyTorch has no GGUF kernels: transformers dequantizes the file's tensors when it loads them, so the
variant runs as the dequantized model (the reference itself, no copy). What the method adds to the
record is the file's quantization: its type (``gguf_file_type``) and the bytes its quantized tensors
take in the file (``gguf_tensor_bytes``), beside ``model_bytes`` in memory.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_inferlab.device import Device
from pytest_inferlab.ground.child import Progress
from pytest_inferlab.engines.sources import GGUF_PATH_ATTRIBUTE, gguf_file_type, gguf_tensor_sizes
from pytest_inferlab.specs.core import ModelSpec
from pytest_inferlab.optimizations.quant import MethodDefaults, QuantSpec, QuantizationError, Variant, quant_methods


def gguf_source(model: Any) -> Path | None:
    """The .gguf file ``model`` was loaded from (sources.py marks it), or None."""
    marked = getattr(model, GGUF_PATH_ATTRIBUTE, None)
    return Path(marked) if marked else None





@dataclass(frozen=True, slots=True)
class GgufFile(MethodDefaults):
    def unsupported(self, device: Device) -> str | None:
        if importlib.util.find_spec("gguf") is None:
            return "the gguf package is not installed: pip install gguf"
        return None

    def unsupported_model(self, model: ModelSpec) -> str | None:
        if model.source not in ("gguf", "embedded"):
            return "the model is not a GGUF file (--inferlab-model=PATH.gguf or the embedded smollm2-135m)"
        return None

    def apply(self, reference: Any, spec: QuantSpec, device: Device, tokenizer: Any = None,
              progress: Progress | None = None) -> Variant:
        path = gguf_source(reference)
        if path is None or not path.is_file():
            raise QuantizationError("gguf: this model was not loaded from a .gguf file; run with "
                                    "--inferlab-model=PATH.gguf or the embedded smollm2-135m")
        return Variant(reference, {"format": "GGUF", "gguf_file": path.name, "gguf_file_type": gguf_file_type(path),
                                   "gguf_tensor_bytes": gguf_tensor_sizes(path)[1],
                                   "runs_as": "dequantized by transformers at load (no GGUF kernels in PyTorch)"})


quant_methods.register("gguf", GgufFile())
