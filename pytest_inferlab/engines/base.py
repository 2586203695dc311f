"""The engine protocol: every member a caller uses, with defaults for the optional capabilities.

Like lm-eval's ``LM`` base class, ``Engine`` declares what the lab, the batching engines and the
optimization families ask of a backend, so nothing probes an engine with ``hasattr``. A backend
subclasses it and overrides what it can do; an optional capability it lacks keeps the default
(no counters, no cache report, no per-rank peaks) or raises ``EngineCapabilityError`` naming the
engine and what to use instead.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, ContextManager, Mapping, Protocol, Sequence

from pytest_inferlab.device import Device
from pytest_inferlab.engines.in_process import hf_lm, log_probs
from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.core import KVCacheSpec, ModelSpec, SamplingSpec, SpeculativeSpec
from pytest_inferlab.ground.trace import AssistUsage, KVUsage, Request, RequestTrace

if TYPE_CHECKING:  # the load generator imports aiohttp; an in-process engine never needs it
    from pytest_inferlab.loadgen.rounds import LoadTarget


class EngineCapabilityError(TypeError):
    """An engine asked for a capability it does not have (the message says which engine to use)."""


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """Facts about a loaded engine that go into every record it produces."""

    engine: str
    model: ModelSpec
    device: Device
    dtype: str
    parameters: int
    model_bytes: int  # 0: the weights are not ours to count (a remote server)
    vocab_size: int
    facts: dict[str, Any] = field(default_factory=dict)  # architecture, weights file, GGUF type...
    kv_cache: KVCacheSpec | None = None  # the cache configuration generate uses (None: dynamic)
    speculative: SpeculativeSpec | None = None  # the drafting method generate uses (None: none)


class KVCacheConfiguration(Protocol):
    """What an engine needs of a KV-cache configuration (optimizations/kv registers them; the plugin's
    ``kv_model`` hands the engine its entry): handed in, so no engine imports the optimizations."""

    def generation_kwargs(self, spec: KVCacheSpec, device: Device) -> dict[str, Any]:
        """Arguments for transformers' ``GenerationConfig``."""

    def fresh_cache(self, spec: KVCacheSpec, model_config: Any) -> Any:
        """A new cache object for one ``generate`` call, or None when transformers builds it."""


class Engine(abc.ABC):
    """A loaded model that generates for a batch of requests and timestamps every delivery.

    Required: ``info``, ``encode``, ``generate``. Optional capabilities have defaults below.

    Example::

        engine = load_engine("transformers", resolve_model("dummy:tiny"), CPU)
        ids = engine.encode("Hello", chat=True)
        [trace] = engine.generate([Request(0, tuple(ids), 8)], SamplingSpec())
    """

    info: EngineInfo
    #: The record's ``conditions`` key for this engine's counters (``server``, ``vllm``); None: no counters.
    counters_key: ClassVar[str | None] = None
    #: The cache of the last generate call's last batch, where the engine can measure it.
    last_kv: KVUsage | None = None
    #: A drafting engine's counts, one per generate call (forwards, drafts, time); () where it does not draft.
    assist_log: Sequence[AssistUsage] = ()
    #: The in-process torch module (fidelity, lm-eval, cache checks); None for remote and multi-process engines.
    module: Any = None
    #: The tokenizer requests are encoded with; None where the engine borrows another engine's ``encode``.
    tokenizer: Any = None
    #: The model as a spec another process rebuilds the same weights from (``assembly/factory.py:
    #: build_model_engine``): lm-eval and reference log-probabilities run in a preparation child
    #: (ground/child.py). None: only this process has the model (a truncated draft, a server).
    rebuild: ModelSpec | None = None

    @classmethod
    def load(cls, spec: ModelSpec, device: Device) -> "Engine":
        """The one constructor from a model: ``spec``'s weights on ``device``, as the factory and a
        preparation child call it (``load_engine(name, spec, device)``). Engines built from more than a
        model (a server's client, a tensor-parallel group, a drafting twin, vLLM with a layout) are built
        by the factory's own methods (assembly/factory.py) and say so here."""
        raise EngineCapabilityError(f"the {cls.__name__} engine is not built from a model spec alone: the engine "
                                    "factory builds it (assembly/factory.py)")

    @abc.abstractmethod
    def encode(self, text: str, chat: bool) -> list[int]:
        """Token ids of ``text``, wrapped in the chat template when ``chat`` and one exists."""

    @abc.abstractmethod
    def generate(self, batch: Sequence[Request], sampling: SamplingSpec) -> list[RequestTrace]:
        """Generate for ``batch`` together; failures come back as ``ok=False`` traces."""

    # ---- optional capabilities ----------------------------------------------------------
    def in_process_module(self, needed_for: str) -> Any:
        """``module``, or an error naming the engine and what needed it."""
        if self.module is None:
            raise EngineCapabilityError(f"{needed_for} needs an in-process model; the {self.info.engine} engine has none")
        return self.module

    def load_target(self) -> LoadTarget:
        """What the ``server`` batching engine drives: ``prepare(requests, sampling)``, ``client()``
        (an async context manager with ``warm``, ``send``, ``text``) and ``finish(outcomes)``; a
        server engine is its own (engines/openai_engine.py). In-process engines batch themselves."""
        raise EngineCapabilityError(f"batching 'server' sends requests to a server engine (server_model fixture); "
                                    f"{self.info.engine} engines batch in process: use static or continuous")

    def counters(self) -> dict[str, float]:
        """Cumulative counters (a server's token sources, vLLM's own metrics); a case records the change."""
        return {}

    def derived_counters(self, delta: Mapping[str, float]) -> dict[str, float]:
        """Rates derived from a case's counter changes (vLLM: acceptance, prefix-cache hit rate)."""
        return {}

    def lm_eval_model(self, device_name: str) -> ContextManager[Any]:
        """lm-eval's model for this engine, open for the ``with`` block: lm-eval's HF wrapper around the
        in-process module by default; llama.cpp scores with its own forward pass (engines/llamacpp_lm.py)."""
        return contextlib.nullcontext(hf_lm(self.in_process_module("lm-eval tasks"), self.tokenizer, device_name))

    def window_log_probs(self, window_ids: Sequence[Sequence[int]]) -> list[Any]:
        """float32 log-softmax of the next-token logits, one [len - 1, vocab] torch tensor per window
        (fidelity, tie margins): the in-process module's forward pass by default."""
        return log_probs(self.in_process_module("log-probabilities (fidelity)"), window_ids, self.info.device.torch_name)

    def rank_peaks(self) -> list[int]:
        """Peak RSS of every rank of a multi-process group after the last generate; [] for one process."""
        return []

    def with_kv_cache(self, spec: KVCacheSpec, configuration: "KVCacheConfiguration") -> "Engine":
        raise EngineCapabilityError(f"the {self.info.engine} engine takes its cache configuration at load "
                                    "(vllm_model), not per case")

    def with_assist(self, spec: SpeculativeSpec, assist: Any) -> "Engine":
        raise EngineCapabilityError(f"the {self.info.engine} engine drafts in its own way (vllm_model's speculative "
                                    "settings), not through transformers' assisted generation")

    def drafting_with(self, spec: SpeculativeSpec, drafter: Any, draft: "Engine | None") -> "Engine":
        """This engine generating with ``drafter`` (a speculative method; ``draft``: its draft engine or
        None). Default: transformers' assisted generation; llama.cpp asks the drafter for its own kind."""
        return self.with_assist(spec, drafter.assist(spec, self, draft))

    def without_assist(self) -> "Engine":
        """The same target decoding on its own (the undrafted twin of a drafting engine)."""
        raise EngineCapabilityError(f"the {self.info.engine} engine has no drafting twin")

    def close(self) -> None:
        """Release what the engine started (processes, sockets); idempotent."""


def encode_prompt(tokenizer: Any, text: str, chat: bool, special_tokens: bool = True) -> list[int]:
    """Token ids of ``text``: wrapped in the tokenizer's chat template when ``chat`` and it has one
    (the template brings its own special tokens), else tokenized as is."""
    if chat and getattr(tokenizer, "chat_template", None):  # a tokenizer attribute, not an engine probe
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                 add_generation_prompt=True)
        return tokenizer(rendered, add_special_tokens=False)["input_ids"]
    return tokenizer(text, add_special_tokens=special_tokens)["input_ids"]


engines: Registry[type[Engine]] = Registry("engines")
engines.register("transformers", "pytest_inferlab.engines.transformers_engine:TransformersEngine")
engines.register("vllm", "pytest_inferlab.engines.vllm_engine:VllmEngine")
engines.register("llamacpp", "pytest_inferlab.engines.llamacpp_engine:LlamaCppEngine")


def load_engine(name: str, spec: ModelSpec, device: Device) -> Engine:
    return engines.get(name).load(spec, device)
