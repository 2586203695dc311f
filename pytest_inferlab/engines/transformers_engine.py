"""In-process transformers engine: ``model.generate`` on the calling thread, timed by a streamer.

docs/architecture.md, "Measurement facts": a streamer whose ``put`` records ``perf_counter`` costs
nothing measurable, and ``generate`` must run on the calling thread (a worker thread loses the
thread settings).
"""

from __future__ import annotations

import contextlib
import dataclasses

import time
import warnings
from typing import Any, Sequence

import torch
from transformers import GenerationConfig
from transformers.generation import BaseStreamer

from pytest_inferlab.compat import wrapped_candidate_generator
from pytest_inferlab.device import Device
from pytest_inferlab.engines.sources import model_sources
from pytest_inferlab.specs.core import KVCacheSpec, ModelSpec, SamplingSpec, SpeculativeSpec
from pytest_inferlab.ground.trace import AssistUsage, Request, RequestTrace
from pytest_inferlab.engines.base import Engine, EngineInfo, KVCacheConfiguration, KVUsage, encode_prompt

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str, device: Device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.is_cuda else torch.float32
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use auto or one of {', '.join(DTYPES)}") from None


def _leaves(tensor: torch.Tensor) -> list[torch.Tensor]:
    """The plain tensors that hold a (possibly quantized) tensor's data: a torchao weight is a
    subclass whose ``__tensor_flatten__`` names its int8/int4 data, scales and zero points."""
    flatten = getattr(type(tensor), "__tensor_flatten__", None)
    if flatten is None:
        return [tensor]
    names, _ = tensor.__tensor_flatten__()
    return [leaf for name in names for leaf in _leaves(getattr(tensor, name))]


def weight_bytes(model: torch.nn.Module) -> tuple[int, int]:
    """(parameters, bytes) of what the checkpoint holds: the state dict, each tied tensor once,
    quantized tensors by the bytes of their packed data, scales and zero points.

    Non-persistent buffers (e.g. RoPE's recomputed ``inv_freq``) are not weights and are not counted.
    """
    def unique(tensors):
        seen: set[int] = set()
        for tensor in tensors:
            for leaf in _leaves(tensor):
                if leaf.device.type != "meta" and leaf.data_ptr() not in seen:
                    seen.add(leaf.data_ptr())
                    yield leaf

    params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values() if p.device.type != "meta")
    nbytes = sum(t.numel() * t.element_size() for t in unique(model.state_dict().values()))
    return params, nbytes


@contextlib.contextmanager
def counting_forwards(model: Any, active: bool):
    """Count the target's forward calls and time candidate generation during one ``generate``.

    transformers builds its candidate generator inside ``generate``; it is wrapped for the call
    (``compat.wrapped_candidate_generator``) so that every ``get_candidates`` is timed and its
    proposed tokens counted. Forwards made while drafting (self-speculative early
    exit runs the target's own layers) are the draft's, not the target's."""
    usage = AssistUsage()
    if not active:
        yield usage
        return
    drafting = [False]

    def count(module: Any, args: Any, kwargs: Any) -> None:
        if not drafting[0]:
            usage.target_forwards += 1

    def wrap(generator: Any) -> Any:
        get_candidates = generator.get_candidates

        def counted(input_ids: Any, *more: Any, **named: Any) -> Any:
            drafting[0] = True
            started = time.perf_counter()
            try:
                candidates = get_candidates(input_ids, *more, **named)
            finally:
                drafting[0] = False
                usage.draft_s += time.perf_counter() - started
            usage.proposed += candidates[0].shape[1] - input_ids.shape[1]
            return candidates

        generator.get_candidates = counted
        return generator

    handle = model.register_forward_pre_hook(count, with_kwargs=True)
    try:
        with wrapped_candidate_generator(model, wrap):
            yield usage
    finally:
        handle.remove()


class TimingStreamer(BaseStreamer):
    """Records when each generation step delivers, and what it delivered per row."""

    def __init__(self) -> None:
        self.prompt_seen = False
        self.times: list[float] = []
        self.steps: list[list[list[int]]] = []  # steps[k][row] = token ids delivered at step k

    def put(self, value: torch.Tensor) -> None:
        now = time.perf_counter()
        if not self.prompt_seen:  # the first put is the prompt itself
            self.prompt_seen = True
            return
        self.times.append(now)
        # one token per row from a decode step; several from a speculative step (batch of one)
        self.steps.append(value.reshape(value.shape[0], -1).tolist())

    def end(self) -> None:
        pass


def cache_bytes(cache: Any) -> int:
    """Bytes held by a transformers cache object: every tensor reachable from its layers (keys,
    values, quantized payloads, scales, full-precision residuals), each storage counted once."""
    import torch

    seen: set[int] = set()
    total = 0

    def visit(obj: Any, depth: int) -> None:
        nonlocal total
        if depth > 4 or obj is None:
            return
        if isinstance(obj, torch.Tensor):
            if obj.device.type != "meta" and obj.data_ptr() not in seen and obj.numel():
                seen.add(obj.data_ptr())
                total += obj.untyped_storage().nbytes()
            return
        if isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item, depth + 1)
        elif isinstance(obj, dict):
            for item in obj.values():
                visit(item, depth + 1)
        elif hasattr(obj, "__dict__") and not isinstance(obj, (str, bytes, int, float, type)):
            for item in vars(obj).values():
                visit(item, depth + 1)

    for layer in getattr(cache, "layers", [cache]):
        visit(layer, 0)
    return total


class TransformersEngine(Engine):
    """``Engine`` over a transformers causal LM on CPU or one CUDA device."""

    def __init__(self, module: Any, tokenizer: Any, info: EngineInfo, rebuild: ModelSpec | None = None,
                 kv_configuration: KVCacheConfiguration | None = None) -> None:
        self.module = module
        self.tokenizer = tokenizer
        self.info = info
        self.kv_configuration = kv_configuration  # how info.kv_cache is applied (with_kv_cache)
        self.rebuild = rebuild
        self.last_kv: KVUsage | None = None  # the cache of the latest generate call, measured
        self.assist: Any = None  # a drafting method (with_assist)
        self.assist_log: list[AssistUsage] = []  # per generate call with drafting: forwards, drafts, time

    def with_kv_cache(self, spec: KVCacheSpec, configuration: KVCacheConfiguration) -> "TransformersEngine":
        """The same model and tokenizer, generating with the cache configuration ``spec`` (applied by
        ``configuration``, its entry in optimizations/kv's registry)."""
        info = dataclasses.replace(self.info, kv_cache=spec,
                                   facts={**self.info.facts, "kv_cache": spec.to_dict()})
        return TransformersEngine(self.module, self.tokenizer, info, self.rebuild, configuration)

    @property
    def model(self) -> Any:
        """Deprecated name of ``module`` (``engine.info.model`` is the ModelSpec; this is the torch module)."""
        warnings.warn("engine.model is deprecated: use engine.module (the torch module)", DeprecationWarning,
                      stacklevel=2)
        return self.module

    @classmethod
    def load(cls, spec: ModelSpec, device: Device) -> "TransformersEngine":
        dtype = resolve_dtype(spec.dtype, device)
        model, tokenizer, facts = model_sources.get(spec.source)().load(spec, device.torch_name, dtype)
        model.eval()
        params, nbytes = weight_bytes(model)
        facts = {"architecture": model.config.model_type, "layers": model.config.num_hidden_layers, **facts}
        info = EngineInfo(
            engine="transformers", model=spec, device=device, dtype=str(dtype).removeprefix("torch."),
            parameters=params, model_bytes=nbytes, vocab_size=model.config.vocab_size, facts=facts,
        )
        return cls(model, tokenizer, info, rebuild=spec)

    def encode(self, text: str, chat: bool) -> list[int]:
        return encode_prompt(self.tokenizer, text, chat)

    def generation_config(self, batch: Sequence[Request], sampling: SamplingSpec) -> GenerationConfig:
        new_tokens = max(r.max_new_tokens for r in batch)
        return GenerationConfig(
            **self.kv_arguments(),
            return_dict_in_generate=True,  # its past_key_values is the cache, measured after the call
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens if all(r.ignore_eos for r in batch) else 0,
            do_sample=not sampling.greedy,
            temperature=sampling.temperature if not sampling.greedy else None,
            top_p=sampling.top_p if not sampling.greedy else None,
            top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )

    def cache_kwargs(self) -> dict[str, Any]:
        """The cache argument of ``generate`` for a configuration that builds its own cache object (a new one per
        ``generate`` call); nothing for those transformers builds from the generation config."""
        from pytest_inferlab.compat import generate_cache_argument

        cache = (self.kv_configuration.fresh_cache(self.info.kv_cache, self.module.config)
                 if self.kv_configuration is not None and self.info.kv_cache is not None else None)
        return {} if cache is None else {generate_cache_argument(): cache}

    def kv_arguments(self) -> dict[str, Any]:
        """The generation-config fields of the cache configuration; none for the default cache."""
        if self.kv_configuration is None or self.info.kv_cache is None:
            return {}
        return self.kv_configuration.generation_kwargs(self.info.kv_cache, self.info.device)

    def inputs(self, batch: Sequence[Request]) -> dict[str, torch.Tensor]:
        """Left-padded ids and attention mask on the engine's device."""
        width = max(len(r.prompt_ids) for r in batch)
        pad = self.tokenizer.pad_token_id
        ids = [[pad] * (width - len(r.prompt_ids)) + list(r.prompt_ids) for r in batch]
        mask = [[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in batch]
        device = self.info.device.torch_name
        return {"input_ids": torch.tensor(ids, device=device), "attention_mask": torch.tensor(mask, device=device)}

    def with_assist(self, spec: SpeculativeSpec, assist: Any) -> "TransformersEngine":
        """The same model generating with a drafting method (``assist``: generation-config fields and
        generate arguments from pytest_inferlab.optimizations.speculative); each call's counts go to ``assist_log``."""
        info = dataclasses.replace(self.info, speculative=spec, facts={**self.info.facts, "speculative": spec.to_dict()})
        engine = TransformersEngine(self.module, self.tokenizer, info, self.rebuild, self.kv_configuration)
        engine.assist = assist
        return engine

    def without_assist(self) -> "TransformersEngine":
        """The same target (quantization, cache configuration) decoding on its own."""
        facts = {k: v for k, v in self.info.facts.items() if k != "speculative"}
        return TransformersEngine(self.module, self.tokenizer, dataclasses.replace(self.info, speculative=None, facts=facts),
                                  self.rebuild, self.kv_configuration)

    def generate(self, batch: Sequence[Request], sampling: SamplingSpec) -> list[RequestTrace]:
        inputs = self.inputs(batch)
        config = self.generation_config(batch, sampling)
        extra: dict[str, Any] = {}
        if self.assist is not None:
            for name, value in self.assist.config_fields.items():
                setattr(config, name, value)
            extra = dict(self.assist.generate_kwargs)
        extra.update(self.cache_kwargs())
        streamer = TimingStreamer()
        if not sampling.greedy:
            torch.manual_seed(sampling.seed + batch[0].index)
        self.info.device.sync()
        t_send = time.perf_counter()
        try:
            with torch.inference_mode(), counting_forwards(self.module, self.assist is not None) as usage:
                out = self.module.generate(**inputs, generation_config=config, streamer=streamer, **extra)
        except Exception as exc:  # a failed request is data (docs/architecture.md)
            return [RequestTrace.failed(r, t_send, f"{type(exc).__name__}: {exc}") for r in batch]
        if self.assist is not None:
            usage.seconds = time.perf_counter() - t_send
            self.assist_log.append(usage)
        self.info.device.sync()
        cache = getattr(out, "past_key_values", None)
        if cache is not None:
            self.last_kv = KVUsage(cache_bytes(cache), int(cache.get_seq_length()), len(batch))
        return [self._row_trace(row, request, t_send, streamer) for row, request in enumerate(batch)]

    def _row_trace(self, row: int, request: Request, t_send: float, streamer: TimingStreamer) -> RequestTrace:
        ids: list[int] = []
        times: list[float] = []
        counts: list[int] = []
        for at, step in zip(streamer.times, streamer.steps):
            delivered = step[row][: request.max_new_tokens - len(ids)]
            if not request.ignore_eos and self.tokenizer.eos_token_id in delivered:
                delivered = delivered[: delivered.index(self.tokenizer.eos_token_id) + 1]
            if not delivered:
                break
            ids += delivered
            times.append(at)
            counts.append(len(delivered))
            if len(ids) >= request.max_new_tokens or ids[-1] == self.tokenizer.eos_token_id and not request.ignore_eos:
                break
        return RequestTrace(request.index, t_send, tuple(times), tuple(counts), len(request.prompt_ids), tuple(ids))


def bare_generate(engine: TransformersEngine, requests: Sequence[Request], sampling: SamplingSpec) -> tuple[int, float]:
    """(output tokens, seconds) of a plain ``model.generate`` loop timed with ``perf_counter``.

    The reference the recording path is compared against: no streamer, no traces.
    """
    prepared = [(engine.inputs([r]), engine.generation_config([r], sampling)) for r in requests]
    tokens = 0
    engine.info.device.sync()
    start = time.perf_counter()
    with torch.inference_mode():
        for inputs, config in prepared:
            out = engine.module.generate(**inputs, generation_config=config, **engine.cache_kwargs())
            tokens += out.sequences.shape[1] - inputs["input_ids"].shape[1]
    engine.info.device.sync()
    return tokens, time.perf_counter() - start


def harness_cost_s(engine: TransformersEngine, request: Request, sampling: SamplingSpec,
                   repeats: int = 200) -> tuple[float, float]:
    """Seconds the recording path adds (per delivered token, per request), timed in isolation.

    Per token: one ``TimingStreamer.put``. Per request: building inputs and the generation
    config, and assembling the trace. On a noisy machine this bounds the overhead far more
    precisely than comparing two noisy end-to-end timings can.
    """
    streamer = TimingStreamer()
    streamer.put(torch.tensor([list(request.prompt_ids)]))
    step = torch.tensor([1])
    start = time.perf_counter()
    for _ in range(repeats * request.max_new_tokens):
        streamer.put(step)
    per_token = (time.perf_counter() - start) / (repeats * request.max_new_tokens)
    filled = TimingStreamer()
    filled.prompt_seen, filled.times, filled.steps = True, streamer.times[: request.max_new_tokens], streamer.steps[: request.max_new_tokens]
    start = time.perf_counter()
    for _ in range(repeats):
        engine.inputs([request])
        engine.generation_config([request], sampling)
        engine._row_trace(0, request, 0.0, filled)
    return per_token, (time.perf_counter() - start) / repeats
