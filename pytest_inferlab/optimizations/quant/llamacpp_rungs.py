"""The GGUF ladder as quantization methods: ``gguf-q4_k_m`` and its siblings, run by llama.cpp.

Each rung is a ``quantization`` parameter like torchao's or GPTQ's, but its variant is not a
transformed torch module: it is a GGUF file made by llama.cpp's quantizer (gguf_ladder.py) and run
by the llama.cpp engine. Its records carry the same speed, bytes and fidelity metrics (KLD and
top-1 from llama.cpp's own logits against the reference's log-probabilities), so rungs sit in the
same trade-off table as every other method.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from pytest_inferlab.device import Device
from pytest_inferlab.ground.child import Progress
from pytest_inferlab.optimizations.quant import MethodDefaults, QuantizationError, Variant, quant_methods
from pytest_inferlab.optimizations.quant.gguf_ladder import LADDER, make_rung
from pytest_inferlab.specs.core import ModelSpec, QuantSpec

PREFIX = "gguf-"


@dataclass(frozen=True, slots=True)
class LlamaCppRung(MethodDefaults):
    """One rung of the ladder; ``own_engine`` builds its variant (``apply`` is for torch transforms)."""

    rung: str
    runtime: ClassVar[str] = "llama.cpp"

    def unsupported(self, device: Device) -> str | None:
        from pytest_inferlab.engines.llamacpp_engine import llamacpp_missing

        if device.kind != "cpu":
            return "llama.cpp rungs run on the CPU here (this build has no GPU offload)"
        return llamacpp_missing()

    def unsupported_model(self, model: ModelSpec) -> str | None:
        if model.source not in ("gguf", "embedded"):
            return "the ladder is made from a GGUF file (--inferlab-model=PATH.gguf or the embedded smollm2-135m)"
        return None

    def apply(self, reference: Any, spec: QuantSpec, device: Device, tokenizer: Any = None,
              progress: Progress | None = None) -> Variant:
        raise QuantizationError(f"{PREFIX}{self.rung.lower()} is a GGUF file run by llama.cpp, not a torch module: "
                                "use it through the quantized_model fixture (the factory builds its engine)")

    def own_engine(self, spec: ModelSpec, device: Device, threads: int, progress: Progress | None = None) -> Any:
        """The rung's file (made once, cached) loaded by the llama.cpp engine, with its facts."""
        from pytest_inferlab.engines.llamacpp_engine import LlamaCppEngine, LlamaCppSettings
        from pytest_inferlab.engines.sources import gguf_path_of

        made = make_rung(gguf_path_of(spec.reference), self.rung, threads, progress=progress)
        engine = LlamaCppEngine.load(spec, device, LlamaCppSettings(threads=threads), path=made.path)
        quantization = {**spec.quant.to_dict(), **made.facts}
        engine.info = dataclasses.replace(engine.info, facts={**engine.info.facts, "quantization": quantization})
        return engine


for _rung in LADDER:
    quant_methods.register(PREFIX + _rung.lower(), LlamaCppRung(_rung))
