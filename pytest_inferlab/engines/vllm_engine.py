"""In-process vLLM (``vllm.LLM``), built from the same specs as the transformers engine.

vLLM is imported only when an engine is loaded (extra ``[gpu]``); without it, or without a GPU,
``unavailable_reason`` says why and the cases skip. The translation both ways is pure and
unit-tested without vLLM, against vLLM's documented names: specs -> ``LLM(**engine_args)`` and
``SamplingParams(**sampling_kwargs)``; ``RequestOutput`` (``prompt_token_ids``,
``outputs[0].token_ids``, ``metrics.arrival_time/first_scheduled_time/first_token_time/
last_token_time``, wall-clock seconds) -> RequestTrace. Offline ``LLM.generate`` returns whole
outputs, so a trace has two deliveries (the first token, then the rest); per-token timestamps
come from the serving path (``vllm serve`` + ``--inferlab-server-url``).
"""

from __future__ import annotations

import importlib.util
import time

from typing import Any, Mapping, Sequence

from pytest_inferlab.device import Device
from pytest_inferlab.specs.parallel import ParallelSpec
from pytest_inferlab.specs.core import KVCacheSpec, ModelSpec, SamplingSpec, SpeculativeSpec
from pytest_inferlab.ground.trace import Request, RequestTrace
from pytest_inferlab.engines.base import Engine, EngineInfo, encode_prompt
from pytest_inferlab.engines.vllm_args import NoVllmEquivalent, kv_engine_args, speculative_engine_args

# pytest-inferlab quantization method -> vLLM's ``quantization`` argument (checkpoints made for it)
QUANTIZATION = {"gptq": "gptq", "awq": "awq", "fp8-weight": "fp8", "fp8-dynamic": "fp8", "bnb-nf4": "bitsandbytes",
                "bnb-int8": "bitsandbytes"}
DTYPES = {"auto": "auto", "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def unavailable_reason(device: Device, parallel: ParallelSpec = ParallelSpec()) -> str | None:
    """Why vLLM cannot run here, or None."""
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed: pip install 'pytest-inferlab[gpu]' vllm (on a CUDA machine)"
    if not device.is_cuda:
        return "vLLM's engine runs on CUDA devices here; run with --inferlab-gpu=N"
    import torch

    if torch.cuda.device_count() < parallel.devices and parallel.ray_address is None:
        return (f"layout tp={parallel.tensor} x pp={parallel.pipeline} needs {parallel.devices} GPUs, "
                f"{torch.cuda.device_count()} visible (or give --inferlab-ray-address for several machines)")
    return None


def engine_args(model: ModelSpec, kv: KVCacheSpec | None = None, speculative: SpeculativeSpec | None = None,
                parallel: ParallelSpec = ParallelSpec(), seed: int = 0) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments for the specs; NoVllmEquivalent for what vLLM cannot express."""
    if model.source == "dummy":
        raise NoVllmEquivalent("dummy models are built in memory; vLLM loads weights by name or folder "
                               "(use load_format='dummy' with a real config instead)")
    args: dict[str, Any] = {"model": model.location, "dtype": DTYPES.get(model.dtype, model.dtype), "seed": seed,
                            "tensor_parallel_size": parallel.tensor, "pipeline_parallel_size": parallel.pipeline}
    if model.source == "gguf" or model.source == "embedded":
        args["tokenizer"] = model.location  # vLLM reads a GGUF's tokenizer from the file
    if model.quant is not None:
        if model.quant.method not in QUANTIZATION:
            raise NoVllmEquivalent(f"quantization {model.quant.method} has no vLLM counterpart "
                                   f"(vLLM: {', '.join(sorted(set(QUANTIZATION.values())))})")
        args["quantization"] = QUANTIZATION[model.quant.method]
    if parallel.ray_address is not None:
        args["distributed_executor_backend"] = "ray"
    args.update(kv_engine_args(kv))
    args.update(speculative_engine_args(speculative, model.location))
    return args


def sampling_kwargs(request: Request, sampling: SamplingSpec) -> dict[str, Any]:
    """``vllm.SamplingParams`` keyword arguments for one request."""
    kwargs: dict[str, Any] = {"max_tokens": request.max_new_tokens, "temperature": sampling.temperature,
                              "top_p": sampling.top_p, "seed": sampling.seed + request.index}
    if request.ignore_eos:
        kwargs.update(ignore_eos=True, min_tokens=request.max_new_tokens)
    return kwargs


def trace_from_output(output: Any, request: Request, t_send: float, wall_to_perf: float,
                      t_done: float) -> RequestTrace:
    """A RequestTrace from a vLLM ``RequestOutput``: its wall-clock metrics moved onto the
    ``perf_counter`` axis (``wall_to_perf`` = perf - wall at the call); without metrics (vLLM V1
    offline may not fill them) the whole output is one delivery at ``t_done``."""
    completion = output.outputs[0] if output.outputs else None
    if completion is None or not getattr(output, "finished", True):
        return RequestTrace.failed(request, t_send, "vLLM returned no finished output")
    ids = tuple(completion.token_ids)
    if not ids:
        return RequestTrace.failed(request, t_send, f"vLLM returned no tokens (finish_reason={completion.finish_reason})")
    cached = getattr(output, "num_cached_tokens", None)  # prompt tokens from its prefix cache (RequestOutput)
    metrics = getattr(output, "metrics", None)
    first = getattr(metrics, "first_token_time", None)
    last = getattr(metrics, "last_token_time", None)
    scheduled = getattr(metrics, "first_scheduled_time", None)
    admit = scheduled + wall_to_perf if scheduled else None
    if first is None or last is None:
        return RequestTrace(request.index, t_send, (t_done,), (len(ids),), len(request.prompt_ids), ids, t_admit=admit,
                            cached_tokens=cached)
    times = (first + wall_to_perf,) if len(ids) == 1 else (first + wall_to_perf, last + wall_to_perf)
    counts = (1,) if len(ids) == 1 else (1, len(ids) - 1)
    return RequestTrace(request.index, t_send, times, counts, len(request.prompt_ids), ids, t_admit=admit,
                        cached_tokens=cached)


# vLLM's own counters (``LLM.get_metrics()``, V1 metrics reader): prefix caching and spec decode
COUNTERS = ("vllm:prefix_cache_queries", "vllm:prefix_cache_hits", "vllm:spec_decode_num_drafts",
            "vllm:spec_decode_num_draft_tokens", "vllm:spec_decode_num_accepted_tokens")


def counters_from_metrics(metrics: Sequence[Any]) -> dict[str, float]:
    """Cumulative values of the counters above from ``get_metrics()`` (a Counter has ``value``, a
    Vector ``values``; several label sets are summed)."""
    out: dict[str, float] = {}
    for metric in metrics:
        name = getattr(metric, "name", None)
        if name not in COUNTERS:
            continue
        value = getattr(metric, "value", None)
        if value is None:
            value = sum(getattr(metric, "values", None) or ())
        out[name.removeprefix("vllm:")] = out.get(name.removeprefix("vllm:"), 0.0) + float(value)
    return out


def derived_rates(counts: Mapping[str, float]) -> dict[str, float]:
    """Prefix-cache hit rate, spec-decode acceptance and mean accepted tokens per draft, where counted."""
    rates = {}
    if counts.get("prefix_cache_queries"):
        rates["prefix_cache_hit_rate"] = counts.get("prefix_cache_hits", 0.0) / counts["prefix_cache_queries"]
    if counts.get("spec_decode_num_draft_tokens"):
        rates["spec_decode_acceptance_rate"] = (counts.get("spec_decode_num_accepted_tokens", 0.0)
                                                / counts["spec_decode_num_draft_tokens"])
    if counts.get("spec_decode_num_drafts"):
        rates["spec_decode_accepted_per_draft"] = (counts.get("spec_decode_num_accepted_tokens", 0.0)
                                                   / counts["spec_decode_num_drafts"])
    return rates


class VllmEngine(Engine):
    """``Engine`` over ``vllm.LLM``; a batch is one ``generate`` call (vLLM schedules it)."""

    counters_key = "vllm"  # the record's conditions key for this engine's counters of a case

    def __init__(self, llm: Any, tokenizer: Any, info: EngineInfo) -> None:
        self.llm = llm
        self.tokenizer = tokenizer
        self.info = info

    def counters(self) -> dict[str, float]:
        """vLLM's cumulative counters (empty where this vLLM has no ``get_metrics``)."""
        get = getattr(self.llm, "get_metrics", None)  # a vLLM API that older releases lack, not an engine probe
        return counters_from_metrics(get()) if get else {}

    def derived_counters(self, delta: Mapping[str, float]) -> dict[str, float]:
        return derived_rates(delta)

    @classmethod
    def load(cls, spec: ModelSpec, device: Device, kv: KVCacheSpec | None = None,
             speculative: SpeculativeSpec | None = None, parallel: ParallelSpec = ParallelSpec(),
             seed: int = 0) -> "VllmEngine":
        reason = unavailable_reason(device, parallel)
        if reason:
            raise RuntimeError(reason)
        from vllm import LLM

        args = engine_args(spec, kv, speculative, parallel, seed)
        llm = LLM(**args)
        info = EngineInfo(engine="vllm", model=spec, device=device, dtype=str(args["dtype"]), parameters=0,
                          model_bytes=0, vocab_size=len(llm.get_tokenizer()), facts={"engine_args": args},
                          kv_cache=kv, speculative=speculative)
        return cls(llm, llm.get_tokenizer(), info)

    def encode(self, text: str, chat: bool) -> list[int]:
        return encode_prompt(self.tokenizer, text, chat)

    def close(self) -> None:
        """Let go of vLLM's engine and hand its GPU memory back (the next layout loads its own)."""
        llm, self.llm = self.llm, None
        if llm is None:
            return
        del llm
        import gc

        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def generate(self, batch: Sequence[Request], sampling: SamplingSpec) -> list[RequestTrace]:
        from vllm import SamplingParams

        prompts = [{"prompt_token_ids": list(r.prompt_ids)} for r in batch]
        params = [SamplingParams(**sampling_kwargs(r, sampling)) for r in batch]
        wall_to_perf = time.perf_counter() - time.time()
        t_send = time.perf_counter()
        try:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        except Exception as exc:  # a failed request is data (docs/architecture.md)
            return [RequestTrace.failed(r, t_send, f"{type(exc).__name__}: {exc}") for r in batch]
        t_done = time.perf_counter()
        return [trace_from_output(out, r, t_send, wall_to_perf, t_done) for out, r in zip(outputs, batch)]
