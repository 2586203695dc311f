"""Quantized variants of a loaded model: one registry of methods, each behind one protocol.

A ``QuantSpec`` names a method and its settings and has a stable ``spec_id``. A method says
whether it can run on a device (``unsupported``: None, or the reason it cannot, so suites skip at
collection) and turns a reference model into its variant (a new module; the reference is never
modified, because fidelity is measured against it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pytest_inferlab.device import Device
from pytest_inferlab.ground.child import Progress
from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.core import ModelSpec, QuantSpec


@dataclass(frozen=True, slots=True)
class Variant:
    """A quantized model and what the method reports about it (dtype, layout, library version)."""

    model: Any
    facts: dict[str, Any] = field(default_factory=dict)


class QuantMethod(Protocol):
    # The engine the variant runs on: "transformers" (the reference's engine runs the module ``apply``
    # makes) or the runtime of ``own_engine`` ("llama.cpp"); the lab's KV-cache configurations are
    # transformers caches, so ``inferlab tune`` prunes them beside another runtime.
    runtime: str

    def unsupported(self, device: Device) -> str | None:
        """None when the method runs on ``device``; else why not (the skip reason)."""

    def unsupported_model(self, model: ModelSpec) -> str | None:
        """None when the method can quantize ``model`` (default); else why not (a GGUF rung needs a GGUF file)."""

    def own_engine(self, spec: ModelSpec, device: Device, threads: int, progress: Progress | None = None) -> Any:
        """The variant as an engine of its own (a llama.cpp rung runs its file), or None (default): the
        variant is the torch module ``apply`` makes, run by the reference's engine."""

    def apply(self, reference: Any, spec: QuantSpec, device: Device, tokenizer: Any,
              progress: Progress | None = None) -> Variant:
        """A new model: the reference quantized by this method (the reference stays unchanged).
        ``tokenizer`` is the reference's, for methods that calibrate on text; ``progress`` hears of a
        long build's steps (GPTQ's layers), for the run's live line."""


class MethodDefaults:
    """The defaults of QuantMethod's optional members; a method subclasses it and overrides what it has."""

    __slots__ = ()
    runtime = "transformers"

    def unsupported_model(self, model: ModelSpec) -> str | None:
        return None

    def own_engine(self, spec: ModelSpec, device: Device, threads: int, progress: Progress | None = None) -> Any:
        return None


quant_methods: Registry[QuantMethod] = Registry("quantization methods")


class QuantizationError(RuntimeError):
    """A variant that cannot be used (broken weights, a checkpoint that is not what it claims)."""


def quantize(reference: Any, spec: QuantSpec, device: Device, tokenizer: Any = None,
             progress: Progress | None = None) -> Variant:
    """The variant of ``reference``; its weights are checked to be finite before anyone uses them."""
    reason = unsupported_reason(spec, device)
    if reason:
        raise RuntimeError(f"quantization cannot run: {reason}")
    variant = quant_methods.get(spec.method).apply(reference, spec, device, tokenizer, progress)
    broken = non_finite_tensors(variant.model)
    if broken:
        more = f" (+{len(broken) - 3} more)" if len(broken) > 3 else ""
        raise QuantizationError(
            f"quantization {spec.method} {dict(spec.settings) or ''} produced NaN/inf weights in "
            f"{', '.join(broken[:3])}{more}: the variant is unusable. Check the calibration data and the "
            "method's settings (a value out of the target type's range overflows to inf).")
    return variant


def non_finite_tensors(model: Any) -> list[str]:
    """Names of floating-point tensors (quantized tensors' scales included) holding NaN or inf."""
    import torch

    from pytest_inferlab.engines.transformers_engine import _leaves

    bad = []
    for name, tensor in model.state_dict().items():
        if any(leaf.is_floating_point() and not bool(torch.isfinite(leaf).all()) for leaf in _leaves(tensor)):
            bad.append(name)
    return bad


def resolve_quant(value: str | QuantSpec) -> QuantSpec:
    """A name or a QuantSpec; an unknown name raises with the known ones (did-you-mean)."""
    return quant_methods.resolve(value, QuantSpec)


def unsupported_reason(spec: QuantSpec, device: Device, model: ModelSpec | None = None) -> str | None:
    """Why ``spec`` cannot run on ``device`` (or on ``model``, for methods bound to a model format)."""
    method = quant_methods.get(spec.method)
    reason = method.unsupported(device)
    if reason:
        return f"{spec.method} on {device.torch_name}: {reason}"
    reason = method.unsupported_model(model) if model is not None else None
    return f"{spec.method} with model {model.name}: {reason}" if reason else None


from pytest_inferlab.optimizations.quant import bnb_methods, dtype, gguf_method, gptqmodel_methods, llamacpp_rungs, torchao_methods  # noqa: E402,F401  (register the built-in methods)
