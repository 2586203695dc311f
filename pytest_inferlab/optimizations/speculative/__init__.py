"""Speculative decoding: drafting methods in a registry, each turning a ``SpeculativeSpec`` into
what transformers' assisted generation needs (generation-config fields, ``generate`` arguments).

On llama.cpp (a GGUF rung as the target) ``prompt-lookup`` and ``draft`` (a lower rung, ``quant``)
run through llama-cpp-python's own verification (``llamacpp_drafts.py``); the other methods skip there.

``prompt-lookup`` drafts by matching n-grams of the prompt (``num_tokens``, ``max_ngram``);
``draft`` uses a smaller model sharing the target's tokenizer (``model``: any model name the
plugin loads, default the target itself; ``layers``: keep the first N layers; ``quant``: a
quantization method; ``num_tokens``: drafted tokens per step); ``early-exit`` is
self-speculative (the target's first ``layer`` layers draft); ``universal-draft`` is a draft
model with its own tokenizer (transformers' universal assisted generation); ``eagle`` (an
EAGLE-style head) runs in vLLM only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pytest_inferlab.device import Device
from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.core import SpeculativeSpec

__all__ = ["SpeculativeSpec", "drafters", "resolve_speculative", "Assist", "SpeculativeConfigError",
           "SpeculativeUnsupported"]


class SpeculativeConfigError(ValueError):
    """A pairing that cannot work (e.g. a draft whose tokenizer differs where it must not)."""


class SpeculativeUnsupported(SpeculativeConfigError):
    """A method the target's engine does not run (the case skips with the reason)."""


@dataclass(frozen=True, slots=True)
class Assist:
    """What ``TransformersEngine.generate`` adds: GenerationConfig fields and generate arguments."""

    config_fields: dict[str, Any] = field(default_factory=dict)
    generate_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Needs:
    """What a drafting method needs, checked at collection (tokenizers only, never weights)."""

    draft_model: bool = False  # a separate draft model (``model`` setting, default the target)
    same_tokenizer: bool = False  # the draft must share the target's vocabulary (token ids compared as they are)
    other_tokenizer: bool = False  # the draft must not share it (transformers refuses universal assisted generation)
    vllm_only: bool = False  # only vLLM's engine runs it
    llamacpp: bool = False  # llama-cpp-python's verification runs it too (``llamacpp_draft``)


class Drafter(Protocol):
    needs: Needs

    def assist(self, spec: SpeculativeSpec, target: Any, draft: Any) -> Assist:
        """The assist for ``target`` (an engine); ``draft`` is the draft engine or None."""

    def llamacpp_draft(self, spec: SpeculativeSpec, target: Any, draft: Any) -> Any:
        """What llama-cpp-python's ``Llama(draft_model=)`` takes for a llama.cpp target (a counted
        ``LlamaDraftModel``); SpeculativeUnsupported where the method does not run on llama.cpp."""


def _not_on_llamacpp(method: str, why: str) -> SpeculativeUnsupported:
    return SpeculativeUnsupported(f"speculative {method} on llama.cpp: {why}; llama.cpp runs prompt-lookup and "
                                  "draft (a lower GGUF rung: SpeculativeSpec.of('draft', quant='gguf-q2_k'))")


drafters: Registry[Drafter] = Registry("speculative methods")


def _int_setting(spec: SpeculativeSpec, name: str, default: int | None, minimum: int = 1) -> int | None:
    value = dict(spec.settings).get(name, default)
    if value is not None and (not isinstance(value, int) or value < minimum):
        raise SpeculativeConfigError(f"speculative {spec.method}: {name}={value!r} must be an integer >= {minimum}")
    return value


def _known_settings(spec: SpeculativeSpec, known: tuple[str, ...]) -> None:
    unknown = sorted(set(dict(spec.settings)) - set(known))
    if unknown:
        raise SpeculativeConfigError(f"speculative {spec.method}: unknown setting(s) {unknown}; "
                                     f"known: {', '.join(known) or '(none)'}")


@dataclass(frozen=True, slots=True)
class PromptLookup:
    needs: Needs = Needs(llamacpp=True)

    def assist(self, spec: SpeculativeSpec, target: Any, draft: Any) -> Assist:
        _known_settings(spec, ("num_tokens", "max_ngram"))
        return Assist({"prompt_lookup_num_tokens": _int_setting(spec, "num_tokens", 10),
                       "max_matching_ngram_size": _int_setting(spec, "max_ngram", 2)})

    def llamacpp_draft(self, spec: SpeculativeSpec, target: Any, draft: Any) -> Any:
        from pytest_inferlab.optimizations.speculative.llamacpp_drafts import PromptLookupDraft

        _known_settings(spec, ("num_tokens", "max_ngram"))
        return PromptLookupDraft(_int_setting(spec, "num_tokens", 10), _int_setting(spec, "max_ngram", 2))


DRAFT_SETTINGS = ("model", "layers", "quant", "num_tokens")


@dataclass(frozen=True, slots=True)
class DraftModel:
    needs: Needs = Needs(draft_model=True, same_tokenizer=True, llamacpp=True)

    def assist(self, spec: SpeculativeSpec, target: Any, draft: Any) -> Assist:
        _known_settings(spec, DRAFT_SETTINGS)
        tokens = _int_setting(spec, "num_tokens", None)
        if tokens is None:  # transformers' heuristic schedule, from the draft's own generation config
            return Assist({}, {"assistant_model": draft.module})
        # transformers reads the drafted tokens per step from the *draft's* generation config: give
        # this pair its own view of the draft with a private config (the draft itself is shared)
        from pytest_inferlab.optimizations.speculative.draft import with_generation_config

        model = with_generation_config(draft.module, num_assistant_tokens=tokens,
                                       num_assistant_tokens_schedule="constant")
        return Assist({}, {"assistant_model": model})

    def llamacpp_draft(self, spec: SpeculativeSpec, target: Any, draft: Any) -> Any:
        from pytest_inferlab.optimizations.speculative.llamacpp_drafts import ModelDraft

        _known_settings(spec, DRAFT_SETTINGS)
        if dict(spec.settings).get("layers") is not None:
            raise SpeculativeConfigError("speculative draft on llama.cpp: layers= truncates a torch module; the draft "
                                         "of a GGUF target is a lower rung (quant='gguf-q2_k')")
        if draft.info.engine != "llamacpp":
            raise SpeculativeConfigError(f"speculative draft on llama.cpp: the draft {draft.info.model.name!r} runs on "
                                         f"{draft.info.engine}; name a GGUF rung as its quant (quant='gguf-q2_k')")
        return ModelDraft(draft.llama, _int_setting(spec, "num_tokens", 4))


@dataclass(frozen=True, slots=True)
class UniversalDraft:
    needs: Needs = Needs(draft_model=True, other_tokenizer=True)

    def assist(self, spec: SpeculativeSpec, target: Any, draft: Any) -> Assist:
        plain = DraftModel().assist(spec, target, draft)
        return Assist(plain.config_fields, {**plain.generate_kwargs, "tokenizer": target.tokenizer,
                                            "assistant_tokenizer": draft.tokenizer})

    def llamacpp_draft(self, spec: SpeculativeSpec, target: Any, draft: Any) -> Any:
        raise _not_on_llamacpp(spec.method, "llama-cpp-python drafts in the target's own vocabulary only")


@dataclass(frozen=True, slots=True)
class EarlyExit:
    needs: Needs = Needs()

    def assist(self, spec: SpeculativeSpec, target: Any, draft: Any) -> Assist:
        _known_settings(spec, ("layer",))
        layers = target.module.config.num_hidden_layers
        layer = _int_setting(spec, "layer", max(1, layers // 2))
        if layer >= layers:
            raise SpeculativeConfigError(f"speculative early-exit: layer={layer} must be below the target's "
                                         f"{layers} layers")
        return Assist({"assistant_early_exit": layer})

    def llamacpp_draft(self, spec: SpeculativeSpec, target: Any, draft: Any) -> Any:
        raise _not_on_llamacpp(spec.method, "llama.cpp cannot stop the target's forward pass after a layer")


@dataclass(frozen=True, slots=True)
class Eagle:
    """EAGLE-style draft heads (``model``: the head's checkpoint, ``variant``: eagle or eagle3):
    vLLM's engine runs them; transformers' assisted generation has no EAGLE head."""

    needs: Needs = Needs(vllm_only=True)

    def assist(self, spec: SpeculativeSpec, target: Any, draft: Any) -> Assist:
        raise SpeculativeConfigError("speculative eagle runs only in vLLM's engine (GPU)")

    def llamacpp_draft(self, spec: SpeculativeSpec, target: Any, draft: Any) -> Any:
        raise _not_on_llamacpp(spec.method, "EAGLE heads run in vLLM's engine only")


drafters.register("eagle", Eagle())
drafters.register("prompt-lookup", PromptLookup())
drafters.register("draft", DraftModel())
drafters.register("universal-draft", UniversalDraft())
drafters.register("early-exit", EarlyExit())


def resolve_speculative(value: str | SpeculativeSpec) -> SpeculativeSpec:
    """A name or a SpeculativeSpec; an unknown name raises with the known ones (did-you-mean)."""
    return drafters.resolve(value, SpeculativeSpec)


def unsupported_speculative_reason(spec: SpeculativeSpec, device: Device) -> str | None:
    """The transformers methods run wherever assisted generation runs (CPU and CUDA); vLLM-only
    ones (EAGLE) skip on the transformers engine with the reason."""
    if drafters.get(spec.method).needs.vllm_only:
        return (f"speculative {spec.method}: EAGLE heads run in vLLM's engine only (GPU); transformers' assisted "
                "generation has none")
    return None


def draft_model_name(spec: SpeculativeSpec, target_name: str) -> str:
    return str(dict(spec.settings).get("model", target_name))


def check_tokenizers(spec: SpeculativeSpec, target: Any, draft_tokenizer: Any, target_tokenizer: Any) -> None:
    """A draft must share the target's vocabulary for ``draft`` (token ids are compared as they are)."""
    if not drafters.get(spec.method).needs.same_tokenizer:
        return
    if draft_tokenizer.get_vocab() != target_tokenizer.get_vocab():
        raise SpeculativeConfigError(
            f"speculative {spec.method}: the draft {draft_model_name(spec, target)!r} has another tokenizer than the "
            f"target {target!r} ({len(draft_tokenizer)} vs {len(target_tokenizer)} tokens); the method compares token "
            "ids as they are: use method 'universal-draft' (which re-tokenizes) or a draft sharing the tokenizer")
