"""Every use of an upstream library's private API, in one place, with the versions it was verified on.

The rest of the lab uses public APIs only. Each helper here first checks that the private member
it needs exists with the shape it was verified with; where it does not, it raises
``UpstreamAPIError`` naming the package, its installed version, the feature affected and the
versions verified, so the case fails at once with that message (never a dead thread and a wait).
``PRIVATE_USES`` lists them all; ``tests/unit/test_compat.py`` checks that each one holds on the
installed versions and that every version pinned in ``requirements/lock.txt`` was verified.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata as md
import threading
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterator


class UpstreamAPIError(RuntimeError):
    """An upstream private API the lab relies on is missing or changed in the installed version."""


@dataclass(frozen=True, slots=True)
class PrivateUse:
    """One private member of an upstream package, the lab feature that needs it, where it was verified."""

    package: str  # distribution name, as pip knows it
    member: str  # dotted path of the private member
    feature: str  # what the lab loses without it
    verified: tuple[str, ...]  # versions of ``package`` this use was run and checked on

    def error(self, what: str) -> UpstreamAPIError:
        return UpstreamAPIError(
            f"{self.package} {installed_version(self.package) or '(not installed)'}: {self.feature} needs "
            f"{self.member}, which {what} (verified on {self.package} {', '.join(self.verified)}); "
            f"install a verified version (requirements/lock.txt pins one) or update pytest_inferlab/compat.py")


GENERATION_LOOP = PrivateUse(
    "transformers", "ContinuousBatchingManager._run_generation_loop",
    "continuous batching (the manager's thread must use the session's torch thread count)", ("5.23.0", "5.24.0"))
CANDIDATE_GENERATOR = PrivateUse(
    "transformers", "GenerationMixin._get_candidate_generator",
    "speculative decoding's draft timing and proposed-token counts", ("5.23.0", "5.24.0"))
COMPILE_ALL_DEVICES = PrivateUse(
    "transformers", "CompileConfig._compile_all_devices",
    "the static-compile KV cache on CPU (transformers compiles the decode step on its own only on CUDA)",
    ("5.23.0", "5.24.0"))
INDUCTOR_COMPILE_THREADS = PrivateUse(
    "torch", "torch._inductor.config.compile_threads",
    "compiling in the measuring process (inductor's worker processes would run beside timed rounds)", ("2.13.0",))
MODULE_TABLES = PrivateUse(
    "torch", "torch.nn.Module._modules/_parameters/_buffers",
    "weight-sharing draft views of a target (truncated drafts, per-draft generation configs)", ("2.13.0",))
GPTQMODEL_LOG_DIR = PrivateUse(
    "gptqmodel", "gptqmodel.looper.loop_processor._PROJECT_LOG_DIR",
    "keeping GPTQModel's quantization log beside its checkpoint (else it writes ./logs)", ("7.7.0",))

FP8_CACHE_STATES = PrivateUse(
    "transformers", "Fp8QuantizedLayer._quantized_keys/_quantized_values/cumulative_length",
    "an fp8 KV cache under speculative decoding (assisted decoding crops the cache after each verification; "
    "transformers' quantized layers cannot be cropped)", ("5.24.0",))

PREFIX_MATCHES = PrivateUse(
    "transformers", "transformers.generation.continuous_batching.cache.PagedAttentionCache.search_prefix_match",
    "counting the prompt tokens continuous batching took from its prefix cache (cached_tokens per request)",
    ("5.24.0",))

BENCHMARK_ROUNDS = PrivateUse(
    "pytest-benchmark", "BenchmarkFixture._make_stats/_mode",
    "adaptive rounds in pytest-benchmark's own statistics (--benchmark-json keeps one duration per timed round; "
    "pedantic() takes its round count before the first round runs)", ("5.3.1",))

PRIVATE_USES: tuple[PrivateUse, ...] = (GENERATION_LOOP, CANDIDATE_GENERATOR, COMPILE_ALL_DEVICES,
                                        INDUCTOR_COMPILE_THREADS, MODULE_TABLES, GPTQMODEL_LOG_DIR, FP8_CACHE_STATES,
                                        PREFIX_MATCHES, BENCHMARK_ROUNDS)


def installed_version(package: str) -> str | None:
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return None


def _member(use: PrivateUse, holder: Any, name: str) -> Any:
    if not hasattr(holder, name):
        raise use.error(f"{type(holder).__name__} does not have")
    return getattr(holder, name)


def _callable_member(use: PrivateUse, holder: Any, name: str) -> Callable[..., Any]:
    member = _member(use, holder, name)
    if not callable(member):
        raise use.error("is not callable in this version")
    return member


class GenerationThread:
    """What became of a continuous-batching manager's generation thread: the exception that escaped
    its loop, if one did. The manager handles errors inside its loop itself (``fatal_error``); an
    exception that escapes it (a changed signature, an error before the loop starts) would otherwise
    kill the thread silently and leave its caller waiting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.escaped: BaseException | None = None

    def record(self, exc: BaseException) -> None:
        with self._lock:
            self.escaped = exc


def prepare_generation_thread(manager: Any, context: Callable[[], ContextManager[Any]]) -> GenerationThread:
    """Run the manager's generation loop inside ``context()`` on its own thread (call before
    ``manager.start()``): thread-local torch settings such as ``torch.set_num_threads`` and inference
    mode do not carry over to a new thread. The loop's own arguments pass through unchanged,
    whatever this transformers version gives it (5.24 added ``use_inference_mode``)."""
    loop = _callable_member(GENERATION_LOOP, manager, "_run_generation_loop")
    thread = GenerationThread()

    def generation_loop(*args: Any, **kwargs: Any) -> Any:
        try:
            with context():
                return loop(*args, **kwargs)
        except BaseException as exc:  # raised on the caller's thread by the batcher, not lost in this one
            thread.record(exc)
        return None

    manager._run_generation_loop = generation_loop
    return thread


@contextlib.contextmanager
def wrapped_candidate_generator(model: Any, wrap: Callable[[Any], Any]) -> Iterator[None]:
    """During the block, every candidate generator that ``model.generate`` builds passes through
    ``wrap(generator) -> generator`` (transformers builds it inside ``generate``, with no public hook)."""
    build = _callable_member(CANDIDATE_GENERATOR, type(model), "_get_candidate_generator")

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return wrap(build(model, *args, **kwargs))

    model._get_candidate_generator = wrapped
    try:
        yield
    finally:
        del model._get_candidate_generator


def compile_on_every_device(compile_config: Any) -> Any:
    """Ask transformers to compile the decode step on CPU too (it does so on its own only on CUDA)."""
    _member(COMPILE_ALL_DEVICES, compile_config, "_compile_all_devices")
    compile_config._compile_all_devices = True
    return compile_config


def compile_in_this_process() -> None:
    """Inductor compiles in this process instead of worker processes beside the timed rounds."""
    import torch._inductor.config as inductor

    _member(INDUCTOR_COMPILE_THREADS, inductor, "compile_threads")
    inductor.compile_threads = 1


def module_view(module: Any) -> Any:
    """A shallow copy of an ``nn.Module`` whose child, parameter and buffer tables can be changed on
    their own: the view shares every tensor with ``module`` (no copy of the weights)."""
    for table in ("_modules", "_parameters", "_buffers"):
        if not isinstance(getattr(module, table, None), dict):
            raise MODULE_TABLES.error(f"is not a dict on {type(module).__name__}")
    view = copy.copy(module)
    view._modules = dict(module._modules)
    view._parameters = dict(module._parameters)
    view._buffers = dict(module._buffers)
    return view


def gptqmodel_log_dir(folder: Any) -> None:
    """GPTQModel writes its per-layer quantization log into ``./logs`` of the working directory;
    point it at ``folder`` instead. Missing in the installed version: the log stays where it goes."""
    from gptqmodel.looper import loop_processor

    if hasattr(loop_processor, "_PROJECT_LOG_DIR"):
        loop_processor._PROJECT_LOG_DIR = folder


def croppable_fp8_cache(model_config: Any) -> Any:
    """transformers' fp8 KV cache (``QuantizedCache("fp8", config)``) whose layers can be cropped, so
    that assisted decoding (prompt lookup, draft models) can run on it. An fp8 layer freezes its
    per-tensor scale at the first update and appends new states as they are, so removing the last
    tokens is slicing its fp8 tensors: the states left are bit for bit those it held before."""
    from transformers.cache_utils import Fp8QuantizedLayer, QuantizedCache

    probe = Fp8QuantizedLayer()
    for name in ("_quantized_keys", "_quantized_values", "cumulative_length"):
        _member(FP8_CACHE_STATES, probe, name)

    class CroppableFp8Layer(Fp8QuantizedLayer):
        is_croppable = True

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove > 0:
                raise ValueError(f"crop({tokens_to_remove}): an fp8 cache layer removes a number of tokens (a "
                                 "negative argument), not down to an absolute length")
            if tokens_to_remove == 0 or not self.is_initialized:
                return
            count = abs(tokens_to_remove)
            keys, key_scale = self._quantized_keys
            values, value_scale = self._quantized_values
            self._quantized_keys = (keys[..., :-count, :], key_scale)
            self._quantized_values = (values[..., :-count, :], value_scale)
            self.cumulative_length -= count

    cache = QuantizedCache("fp8", model_config)
    cache.layers = [CroppableFp8Layer() for _ in cache.layers]
    return cache


def generate_cache_argument() -> str:
    """The name of ``generate``'s cache argument: ``cache`` from transformers 5.24 (``past_key_values``
    still works there, with a FutureWarning), ``past_key_values`` before."""
    from packaging.version import Version

    version = installed_version("transformers")
    return "cache" if version is not None and Version(version) >= Version("5.24") else "past_key_values"


@contextlib.contextmanager
def counted_prefix_matches() -> Iterator[dict[str, int]]:
    """During the block, the prompt tokens each continuous-batching request (by request id) took from
    the paged cache's prefix sharing (the cache reports matches to nobody; its module is internal)."""
    try:
        from transformers.generation.continuous_batching.cache import PagedAttentionCache
    except ImportError:
        raise PREFIX_MATCHES.error("is missing (no module transformers.generation.continuous_batching.cache)") from None
    search = _callable_member(PREFIX_MATCHES, PagedAttentionCache, "search_prefix_match")
    matched: dict[str, int] = {}

    def counting(cache: Any, request_id: str, prompt_ids: list[int]) -> int:
        found = search(cache, request_id, prompt_ids)
        matched[request_id] = matched.get(request_id, 0) + found
        return found

    PagedAttentionCache.search_prefix_match = counting
    try:
        yield matched
    finally:
        PagedAttentionCache.search_prefix_match = search


def record_benchmark_rounds(benchmark: Any, durations: list[float]) -> None:
    """pytest-benchmark's statistics of one test from rounds the lab timed itself (as many as its
    stopping rule ran): what ``pedantic`` records, with the fixture marked used as ``pedantic`` marks it."""
    make_stats = _callable_member(BENCHMARK_ROUNDS, benchmark, "_make_stats")
    if _member(BENCHMARK_ROUNDS, benchmark, "_mode"):
        raise RuntimeError("pytest-benchmark's fixture was used already: the lab measures one case per test")
    benchmark._mode = "benchmark.pedantic(...)"
    stats = make_stats(1)
    for duration in durations:
        stats.update(duration)
