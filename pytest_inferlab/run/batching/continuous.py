"""Continuous batching through transformers' ``ContinuousBatchingManager`` (paged KV cache).

Requests join and leave the running batch at every step. The manager generates on its own
thread; this module submits arrivals on the calling thread at their scheduled times (so the load
generator's lag is real and measured) and collects results with the manager's per-token
timestamps (``record_timestamps``). The paged cache is always sized here, never left to
transformers' default of most of the free memory: ``num_blocks`` x ``page_size`` tokens, checked
against the memory the device has before anything is allocated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from pytest_inferlab.compat import GenerationThread, counted_prefix_matches, prepare_generation_thread
from pytest_inferlab.device import Device
from pytest_inferlab.specs.load import LoadSpec
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.ground.trace import KVUsage, Request, RequestTrace, RoundTrace
from pytest_inferlab.run.batching import Arrivals, BatchingSpec, budget_failures, finish_round

DEFAULT_PAGE_SIZE = 32
DEFAULT_MAX_BATCH = 16
DEFAULT_MAX_BATCH_TOKENS = 512
# Share of the device's available memory the paged cache may take; more is refused before allocation.
MAX_MEMORY_SHARE = 0.8


class BatchingMemoryError(ValueError):
    """A continuous-batching cache that would not fit; raised before anything is allocated."""


@dataclass(frozen=True, slots=True)
class CachePlan:
    """The paged cache of one round: capacity and the bytes it will take."""

    page_size: int
    num_blocks: int
    max_batch: int
    max_batch_tokens: int
    bytes_per_token: int
    prefix_sharing: bool = False  # prompt blocks already in the cache are shared, not computed again

    @property
    def nbytes(self) -> int:
        return self.num_blocks * self.page_size * self.bytes_per_token


def kv_bytes_per_token(config: Any, element_size: int) -> int:
    """Keys and values of every layer for one token, from the model's config."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * heads * head_dim * element_size


def cache_plan(engine: Any, requests: Sequence[Request], spec: BatchingSpec) -> CachePlan:
    """Settings from the batching spec, then the engine's ``paged`` KV configuration, then defaults
    sized for ``max_batch`` of the workload's longest requests in flight at once."""
    kv = engine.info.kv_cache
    kv_settings = dict(kv.settings) if kv is not None and kv.kind == "paged" else {}

    def setting(name: str, default: int) -> int:
        value = spec.setting(name, kv_settings.get(name, default))
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"batching {spec.kind}: {name}={value!r} must be an integer >= 1")
        return value

    page_size = setting("page_size", DEFAULT_PAGE_SIZE)
    max_batch = setting("max_batch", DEFAULT_MAX_BATCH)
    longest = max(r.longest_tokens() for r in requests)  # a session's last turn holds its history
    blocks_needed = max_batch * math.ceil(longest / page_size)
    element_size = next(engine.module.parameters()).element_size()
    sharing = spec.setting("prefix_sharing", False)
    if not isinstance(sharing, bool):
        raise ValueError(f"batching {spec.kind}: prefix_sharing={sharing!r} must be True or False")
    return CachePlan(page_size, setting("num_blocks", blocks_needed), max_batch,
                     setting("max_batch_tokens", DEFAULT_MAX_BATCH_TOKENS),
                     kv_bytes_per_token(engine.module.config, element_size), sharing)


def available_bytes(device: Device) -> int:
    if device.is_cuda:
        import torch

        return torch.cuda.mem_get_info(device.index)[0]
    import psutil

    return psutil.virtual_memory().available


def check_fits(plan: CachePlan, device: Device) -> None:
    available = available_bytes(device)
    if plan.nbytes > MAX_MEMORY_SHARE * available:
        raise BatchingMemoryError(
            f"batching continuous: num_blocks={plan.num_blocks} x page_size={plan.page_size} tokens x "
            f"{plan.bytes_per_token} B/token = {plan.nbytes / 2**30:.2f} GiB of paged KV cache, but "
            f"{device.torch_name} has {available / 2**30:.2f} GiB available (at most {MAX_MEMORY_SHARE:.0%} may be "
            "used): lower num_blocks, page_size or max_batch in the BatchingSpec settings")


class GenerationThreadError(RuntimeError):
    """The manager's generation thread died of an error outside any request: the round cannot go on."""


@dataclass(frozen=True, slots=True)
class RunningManager:
    """A started manager and the record of its generation thread (``compat.GenerationThread``)."""

    manager: Any
    thread: GenerationThread


def start_manager(engine: Any, plan: CachePlan, sampling: SamplingSpec, ignore_eos: bool) -> RunningManager:
    import torch
    from transformers import ContinuousBatchingConfig, GenerationConfig

    # ignore_eos: generate's min_new_tokens (= max_new_tokens) keeps EOS out of every step's choice; the
    # manager has no per-request minimum, so EOS is suppressed outright (same tokens: every request of such
    # a round runs to its max_new_tokens). With eos_token_id=-1 alone the model chose EOS and went on,
    # and the lossless check saw continuous batching diverge from sequential decoding (2026-12-05).
    eos = engine.tokenizer.eos_token_id
    generation = GenerationConfig(
        do_sample=not sampling.greedy, temperature=sampling.temperature if not sampling.greedy else None,
        top_p=sampling.top_p if not sampling.greedy else None, top_k=None,
        eos_token_id=-1 if ignore_eos else eos, suppress_tokens=[eos] if ignore_eos and eos is not None else None,
        pad_token_id=engine.tokenizer.pad_token_id)
    batching = ContinuousBatchingConfig(
        page_size=plan.page_size, num_blocks=plan.num_blocks, max_batch_tokens=plan.max_batch_tokens,
        max_requests_per_batch=plan.max_batch, allow_block_sharing=plan.prefix_sharing, seed=sampling.seed)
    manager = engine.module.init_continuous_batching(generation_config=generation, continuous_batching_config=batching)
    threads = torch.get_num_threads()

    @contextlib.contextmanager
    def like_the_caller() -> Iterator[None]:  # a new thread starts with torch's default thread count
        torch.set_num_threads(threads)
        with torch.inference_mode():
            yield

    thread = prepare_generation_thread(manager, like_the_caller)
    with torch.inference_mode():  # transformers >= 5.24 runs its loop in the caller's inference mode
        manager.start()
    return RunningManager(manager, thread)


def raise_if_thread_died(running: RunningManager) -> None:
    """Raise on the caller's thread, at once, when the generation thread died of an error that no
    request caused (the manager records those it catches as ``fatal_error``: they are per request)."""
    escaped = running.thread.escaped
    if escaped is not None:
        raise GenerationThreadError(f"transformers' continuous batching thread died: {type(escaped).__name__}: "
                                    f"{escaped}") from escaped
    status = running.manager.background_thread_status
    if not running.manager.is_running() and status.fatal_error is None:
        raise GenerationThreadError("transformers' continuous batching thread stopped without an error while "
                                    "requests were waiting")


def request_trace(output: Any, arrival: float, request: Request) -> RequestTrace:
    times = tuple(output.timestamps or ())
    ids = tuple(output.generated_tokens)[: len(times)]
    admitted = output.lifespan[0] if output.lifespan and output.lifespan[0] > 0 else None
    if output.error is not None:
        return RequestTrace(request.index, arrival, (), (), len(request.prompt_ids), ok=False,
                            error=str(output.error), t_admit=admitted)
    return RequestTrace(request.index, arrival, times, (1,) * len(times), len(request.prompt_ids), ids,
                        t_admit=admitted)


def submit(manager: Any, engine: Any, request: Request) -> str | None:
    eos = -1 if request.ignore_eos else engine.tokenizer.eos_token_id
    return manager.add_request(list(request.prompt_ids), request_id=f"r{request.index}",
                               max_new_tokens=request.max_new_tokens, record_timestamps=True, eos_token_id=eos)


def loop_died(manager: Any, settle_s: float = 1.0) -> bool:
    """Whether the generation loop stopped on a fatal error. The manager fails every request first
    and records the error after, so a failed output waits (at most ``settle_s``) for the verdict."""
    status = manager.background_thread_status
    until = time.perf_counter() + settle_s
    while status.fatal_error is None and manager.is_running() and time.perf_counter() < until:
        time.sleep(0.01)
    return status.fatal_error is not None or not manager.is_running()


class ManagerHolder:
    """The round's running manager; ``restart`` replaces one whose generation loop died."""

    def __init__(self, start: Callable[[], RunningManager]) -> None:
        self._start = start
        self.running = start()

    @property
    def current(self) -> Any:
        return self.running.manager

    def check(self) -> None:
        raise_if_thread_died(self.running)

    def restart(self) -> None:
        self.stop()
        self.running = self._start()

    def stop(self) -> None:
        self.current.stop(block=True, hard_stop=True)


@dataclass(frozen=True, slots=True)
class ContinuousBatcher:
    """transformers' continuous batching manager; per-request timestamps from the manager."""

    def lossless_claim(self, spec: BatchingSpec) -> str | None:
        return "continuous batching with prefix sharing" if spec.setting("prefix_sharing", False) else "continuous batching"

    def unsupported(self, device: Device) -> str | None:
        try:
            from transformers.generation import ContinuousBatchingManager  # noqa: F401
        except ImportError as exc:
            return f"this transformers has no continuous batching ({exc})"
        return None

    def serve(self, engine: Any, requests: Sequence[Request], load: LoadSpec, sampling: SamplingSpec,
              spec: BatchingSpec, budget_s: float) -> RoundTrace:
        if not hasattr(engine.module, "init_continuous_batching"):  # a transformers API, not an engine probe
            raise TypeError(f"batching continuous needs a transformers model; {engine.info.engine} engines batch "
                            "on their own")
        plan = cache_plan(engine, requests, spec)
        check_fits(plan, engine.info.device)
        ignore_eos = all(r.ignore_eos for r in requests)
        manager = ManagerHolder(lambda: start_manager(engine, plan, sampling, ignore_eos))
        counting = counted_prefix_matches() if plan.prefix_sharing else contextlib.nullcontext(None)
        try:
            with counting as matched:
                trace = self._serve(manager, engine, requests, load, budget_s)
        finally:
            manager.stop()
        # cached prompt tokens per request: counted where sharing is on, none where it is off
        return dataclasses.replace(trace, requests=tuple(
            dataclasses.replace(r, cached_tokens=(matched or {}).get(f"r{r.index}", 0)) if r.ok else r
            for r in trace.requests))

    def _serve(self, manager: "ManagerHolder", engine: Any, requests: Sequence[Request], load: LoadSpec,
               budget_s: float) -> RoundTrace:
        t0 = time.perf_counter()
        deadline = t0 + budget_s
        arrivals = Arrivals(load, requests, t0)
        in_flight: dict[str, tuple[float, Request]] = {}
        traces: list[RequestTrace] = []
        cut = False
        while arrivals or in_flight:
            now = time.perf_counter()
            if now > deadline:
                for request_id in in_flight:
                    manager.current.cancel_request(request_id)
                traces += budget_failures(list(in_flight.values()) + arrivals.remaining(), budget_s)
                cut = True
                break
            for arrival, request in arrivals.take_due(now, observed=True):
                request_id = submit(manager.current, engine, request)
                if request_id is None:  # the manager refused it (stopping or failed)
                    traces.append(RequestTrace.failed(request, arrival, "the continuous batching manager refused "
                                                      "the request (it is stopping or has failed)"))
                else:
                    in_flight[request_id] = (arrival, request)
            output = manager.current.get_result(timeout=arrivals.wait_s(now, deadline))
            if output is None and in_flight:
                manager.check()
            failed = output is not None and output.error is not None
            if in_flight and (failed or output is None) and loop_died(manager.current, 1.0 if failed else 0.0):
                # A failing request takes the generation loop down with its whole batch: restart the
                # loop and serve the batch's requests one at a time, so only the bad one fails.
                suspects = list(in_flight.values())
                in_flight.clear()
                alone = []
                for arrival, request in suspects:
                    manager.restart()
                    alone.append((request, self._alone(manager, engine, arrival, request, deadline)))
                manager.restart()
                traces += [trace for _, trace in alone]
                arrivals.completed(alone, time.perf_counter())
                continue
            if output is None or not output.is_finished() or output.request_id not in in_flight:
                continue
            arrival, request = in_flight.pop(output.request_id)
            traces.append(request_trace(output, arrival, request))
            arrivals.completed([(request, traces[-1])], time.perf_counter())
        return dataclasses.replace(finish_round(t0, traces, arrivals, cut), kv=self._pool_usage(manager.current))

    @staticmethod
    def _alone(holder: ManagerHolder, engine: Any, arrival: float, request: Request, deadline: float) -> RequestTrace:
        """Serve one request by itself on a fresh manager: its own result, or its own failure."""
        manager = holder.current
        request_id = submit(manager, engine, request)
        while request_id is not None and time.perf_counter() < deadline:
            output = manager.get_result(timeout=min(0.25, max(0.0, deadline - time.perf_counter())))
            fatal = manager.background_thread_status.fatal_error
            if fatal is not None:
                return RequestTrace.failed(request, arrival, f"{type(fatal).__name__}: {fatal}")
            if output is not None and output.request_id == request_id and output.is_finished():
                return request_trace(output, arrival, request)
            if output is None:
                holder.check()
        return RequestTrace.failed(request, arrival, "not served: the round's time budget ran out while isolating "
                                   "a failing request")

    @staticmethod
    def _pool_usage(manager: Any) -> KVUsage | None:
        """The paged pool's bytes and capacity, from the cache object (kv_cache_bytes in the record);
        None where the manager holds no cache."""
        cache = getattr(getattr(manager, "batch_processor", None), "cache", None)
        if cache is None:
            return None
        capacity = cache.num_blocks * manager.continuous_batching_config.page_size
        return KVUsage(int(cache.cache_tensor.numel() * cache.cache_tensor.element_size()), capacity, 1)


CONTINUOUS = ContinuousBatcher()
