"""Engines: the narrow interface every backend implements, and the registry that finds them.

Backends are registered as lazy ``"module:Class"`` strings so that loading the plugin imports
neither torch nor vllm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from pytest_inferlab.device import Device
from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.core import KVCacheSpec, ModelSpec, SamplingSpec, SpeculativeSpec
from pytest_inferlab.run.trace import Request, RequestTrace


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """Facts about a loaded engine that go into every record it produces."""

    engine: str
    model: ModelSpec
    device: Device
    dtype: str
    parameters: int
    model_bytes: int
    vocab_size: int
    facts: dict[str, Any] = field(default_factory=dict)  # architecture, weights file, GGUF type...
    kv_cache: KVCacheSpec | None = None  # the cache configuration generate uses (None: dynamic)
    speculative: SpeculativeSpec | None = None  # the drafting method generate uses (None: none)


class Engine(Protocol):
    """A loaded model that generates for a batch of requests and timestamps every delivery.

    Example::

        engine = load_engine("transformers", resolve_model("dummy:tiny"), CPU)
        ids = engine.encode("Hello", chat=True)
        [trace] = engine.generate([Request(0, tuple(ids), 8)], SamplingSpec())
    """

    info: EngineInfo

    def encode(self, text: str, chat: bool) -> list[int]:
        """Token ids of ``text``, wrapped in the chat template when ``chat`` and one exists."""

    def generate(self, batch: Sequence[Request], sampling: SamplingSpec) -> list[RequestTrace]:
        """Generate for ``batch`` together; failures come back as ``ok=False`` traces."""


def encode_prompt(tokenizer: Any, text: str, chat: bool, special_tokens: bool = True) -> list[int]:
    """Token ids of ``text``: wrapped in the tokenizer's chat template when ``chat`` and it has one
    (the template brings its own special tokens), else tokenized as is."""
    if chat and getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                 add_generation_prompt=True)
        return tokenizer(rendered, add_special_tokens=False)["input_ids"]
    return tokenizer(text, add_special_tokens=special_tokens)["input_ids"]


engines: Registry[Any] = Registry("engines")
engines.register("transformers", "pytest_inferlab.engines.transformers_engine:TransformersEngine")
engines.register("vllm", "pytest_inferlab.engines.vllm_engine:VllmEngine")


def load_engine(name: str, spec: ModelSpec, device: Device) -> Engine:
    return engines.get(name).load(spec, device)
