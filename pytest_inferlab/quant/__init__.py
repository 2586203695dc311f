"""Quantized variants of a loaded model: one registry of methods, each behind one protocol.

A ``QuantSpec`` names a method and its settings and has a stable ``spec_id``. A method says
whether it can run on a device (``unsupported``: None, or the reason it cannot, so suites skip at
collection) and turns a reference model into its variant (a new module; the reference is never
modified, because fidelity is measured against it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..device import Device
from ..registry import Registry
from ..specs import QuantSpec


@dataclass(frozen=True, slots=True)
class Variant:
    """A quantized model and what the method reports about it (dtype, layout, library version)."""

    model: Any
    facts: dict[str, Any] = field(default_factory=dict)


class QuantMethod(Protocol):
    def unsupported(self, device: Device) -> str | None:
        """None when the method runs on ``device``; else why not (the skip reason)."""

    def apply(self, reference: Any, spec: QuantSpec, device: Device) -> Variant:
        """A new model: the reference quantized by this method (the reference stays unchanged)."""


quant_methods: Registry[QuantMethod] = Registry("quantization methods")


def quantize(reference: Any, spec: QuantSpec, device: Device) -> Variant:
    reason = unsupported_reason(spec, device)
    if reason:
        raise RuntimeError(f"quantization cannot run: {reason}")
    return quant_methods.get(spec.method).apply(reference, spec, device)


def resolve_quant(value: str | QuantSpec) -> QuantSpec:
    """A method name or a QuantSpec; an unknown name raises with the known ones (did-you-mean)."""
    spec = value if isinstance(value, QuantSpec) else QuantSpec.of(str(value))
    quant_methods.get(spec.method)
    return spec


def unsupported_reason(spec: QuantSpec, device: Device) -> str | None:
    reason = quant_methods.get(spec.method).unsupported(device)
    return f"{spec.method} on {device.torch_name}: {reason}" if reason else None


from . import dtype, torchao_methods  # noqa: E402,F401  (register the built-in methods)
