"""The suites' vocabulary: ``model``, ``workload``, ``lab`` (and the session/device behind them).

Parametrize them directly or indirectly; stacked ``parametrize`` decorators compose a cross
product, and expensive objects (loaded models, tokenized prompts) are cached per session by spec.
Every indirect axis (quantization, kv_cache, speculative, batching, load, parallel, workload)
goes through one resolver, ``axis_value``: the parameter (a name or a spec) or the axis' default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pytest

from pytest_inferlab.device import Device
from pytest_inferlab.engines.base import Engine
from pytest_inferlab.engines.model_checks import ModelSourceError
from pytest_inferlab.optimizations.kv import kv_caches, resolve_kv, unsupported_for_engine
from pytest_inferlab.optimizations.quant import resolve_quant
from pytest_inferlab.optimizations.speculative import SpeculativeUnsupported, resolve_speculative
from pytest_inferlab.plugin.collection import shown
from pytest_inferlab.plugin.lab import Lab
from pytest_inferlab.plugin.session import SESSION_KEY, LabSession
from pytest_inferlab.run.batching import resolve_batching
from pytest_inferlab.specs.workloads import resolve_workload
from pytest_inferlab.specs.batching import BatchingSpec
from pytest_inferlab.specs.core import KVCacheSpec, ModelSpec, QuantSpec, SpeculativeSpec, WorkloadSpec
from pytest_inferlab.specs.load import LoadSpec, parse_load
from pytest_inferlab.specs.parallel import ParallelSpec

# Fixtures a speculative pair drafts on when the test uses one too, in this order (else ``model``):
# pairs compose with quantized variants and cache configurations by stacking parametrize.
SPECULATIVE_TARGETS = ("quantized_model", "kv_model")


@dataclass(frozen=True, slots=True)
class Axis:
    """An indirect fixture's axis: its default value and how a parameter becomes a spec."""

    name: str
    default: Any
    resolve: Callable[[Any], Any]


AXES = {axis.name: axis for axis in (
    Axis("quantization", "fp32", resolve_quant),
    Axis("kv_cache", "dynamic", resolve_kv),
    Axis("speculative", "prompt-lookup", resolve_speculative),
    Axis("batching", "static", resolve_batching),
    Axis("workload", "short-chat", resolve_workload),
    Axis("parallel", ParallelSpec(), lambda value: value if isinstance(value, ParallelSpec) else ParallelSpec.parse(value)),
)}


def axis_value(request: pytest.FixtureRequest, axis: Axis) -> Any:
    """The axis' spec for this test: its (indirect) parameter, else the default. A bad value fails
    the case naming the parameter (collection already refused the ones it could check)."""
    value = getattr(request, "param", axis.default)  # pytest sets ``param`` only on parametrized requests
    try:
        return axis.resolve(value)
    except (LookupError, ValueError) as exc:
        pytest.fail(f"parameter {axis.name}={shown(value)}: {exc}", pytrace=False)


def one_line_failure(exc: BaseException, verbose: bool) -> str:
    """The error in one line; under -v, the library traceback that caused it follows."""
    import traceback

    cause = exc.__cause__
    if not verbose or cause is None:
        return str(exc)
    return f"{exc}\n" + "".join(traceback.format_exception(cause))


@pytest.fixture(scope="session")
def inferlab_session(pytestconfig: pytest.Config) -> LabSession:
    """The run's LabSession (settings, device, engine factory, references, gate)."""
    return pytestconfig.stash[SESSION_KEY]


@pytest.fixture(scope="session")
def inferlab_device(inferlab_session: LabSession) -> Device:
    """The device this run measures on: CPU, or the CUDA device given by --inferlab-gpu."""
    return inferlab_session.device


@pytest.fixture
def model(request: pytest.FixtureRequest, inferlab_session: LabSession) -> Engine:
    """The loaded model (an Engine; its torch module is ``.module``, its ModelSpec ``.info.model``):
    ``--inferlab-model``, or the indirect parameter (name or ModelSpec)."""
    given = hasattr(request, "param")  # pytest's FixtureRequest has ``param`` only when parametrized
    name: str | ModelSpec = request.param if given else inferlab_session.settings.model
    try:
        spec = inferlab_session.engines.resolve(name, "parameter model" if given else "--inferlab-model")
        return inferlab_session.engines.engine_for(spec)
    except ModelSourceError as exc:
        failure = one_line_failure(exc, request.config.get_verbosity() > 0)
    pytest.fail(failure, pytrace=False)  # outside the except: no chained library traceback


@pytest.fixture
def quantization(request: pytest.FixtureRequest) -> QuantSpec:
    """The quantization spec: the (indirect) parameter, a method name or QuantSpec; default fp32.
    Methods the device cannot run are skipped at collection with the reason."""
    return axis_value(request, AXES["quantization"])


@pytest.fixture
def quantized_model(inferlab_session: LabSession, model: Engine, quantization: QuantSpec) -> Engine:
    """``model`` (``--inferlab-model``) quantized by ``quantization`` (built once per session, cached).
    Its records carry fidelity to the unquantized model: kld_mean, kld_p99, top1_agreement, ppl."""
    return inferlab_session.engines.engine_for(model.info.model, quant=quantization)


@pytest.fixture
def kv_cache(request: pytest.FixtureRequest) -> KVCacheSpec:
    """The KV-cache configuration: the (indirect) parameter, a name or KVCacheSpec; default dynamic.
    Configurations the device cannot run are skipped at collection with the reason."""
    return axis_value(request, AXES["kv_cache"])


@pytest.fixture
def kv_model(model: Engine, kv_cache: KVCacheSpec) -> Engine:
    """``--inferlab-model`` generating with the cache configuration ``kv_cache``; its records carry
    the spec (its own spec_id), ``kv_cache_bytes`` and ``kv_bytes_per_token``. A configuration the
    loaded model cannot use (e.g. a sliding window on full attention) skips with the reason."""
    reason = unsupported_for_engine(kv_cache, model.in_process_module("a KV-cache configuration").config,
                                    model.info.model.name)
    if reason:
        pytest.skip(reason)
    return model.with_kv_cache(kv_cache, kv_caches.get(kv_cache.kind))


@pytest.fixture
def speculative(request: pytest.FixtureRequest) -> SpeculativeSpec:
    """The drafting method: the (indirect) parameter, a method name (``prompt-lookup``, ``draft``,
    ``early-exit``, ``universal-draft``) or SpeculativeSpec; default prompt-lookup."""
    return axis_value(request, AXES["speculative"])


@pytest.fixture
def speculative_model(request: pytest.FixtureRequest, inferlab_session: LabSession, model: Engine,
                      speculative: SpeculativeSpec) -> Engine:
    """The target generating with ``speculative``. The target is the first of SPECULATIVE_TARGETS
    the test also uses (pairs compose with variants and caches), else ``model``. Its records carry
    acceptance, tokens per target forward, draft cost, the interleaved speedup and the exactness check."""
    composed = next((name for name in SPECULATIVE_TARGETS if name in request.fixturenames), None)
    target = request.getfixturevalue(composed) if composed else model
    if target.info.kv_cache is not None:
        reason = kv_caches.get(target.info.kv_cache.kind).unsupported_with_drafting()
        if reason:
            pytest.skip(f"{speculative.method} on KV cache {target.info.kv_cache.kind}: {reason}")
    try:
        return inferlab_session.engines.speculative_engine(target, speculative)
    except SpeculativeUnsupported as exc:
        pytest.skip(str(exc))
    except (ValueError, ModelSourceError) as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def inferlab_server(inferlab_session: LabSession) -> Iterator[Any]:
    """The server of the serving path: --inferlab-server-url, else the --inferlab-server kind
    (``transformers serve``, or llama-cpp-python's server on the model's GGUF file) started on
    127.0.0.1 (a free port) with the session's model, stopped by its process group at the end; a kind
    that cannot serve the model here skips the cases with the reason."""
    from pytest_inferlab.engines.local_server import ServerUnsupported

    try:
        handle = inferlab_session.engines.server()
    except ServerUnsupported as exc:
        pytest.skip(str(exc))
    try:
        yield handle
    finally:
        inferlab_session.engines.stop_server()


@pytest.fixture
def server_model(inferlab_session: LabSession, inferlab_server: Any) -> Engine:
    """An engine streaming to the server (``lab.measure(server_model, workload, batching="server",
    load=...)``). A server that has died fails the case with its exit code and log."""
    from pytest_inferlab.engines.served_model import ServedModelError

    try:
        return inferlab_session.engines.server_engine()
    except (RuntimeError, ServedModelError) as exc:  # a dead server; its tokenizer is not ours
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def parallel(request: pytest.FixtureRequest, inferlab_session: LabSession) -> ParallelSpec:
    """The parallel layout: the (indirect) parameter, a ParallelSpec or ``"tp2"``/``"tp2-pp2"``;
    default one device. --inferlab-ray-address spreads it over a Ray cluster."""
    return axis_value(request, AXES["parallel"]).with_ray(inferlab_session.settings.ray_address)


@pytest.fixture
def tp_model(inferlab_session: LabSession, model: Engine, parallel: ParallelSpec) -> Engine:
    """``model`` split over ``parallel.tensor`` CPU processes (torch.distributed, gloo) through
    transformers' tensor-parallel plan; records carry every rank's peak RSS. Skips with the reason
    where the split cannot run (GPU: use vllm_model; heads not divisible; pipeline parallel)."""
    from pytest_inferlab.engines.tensor_parallel import tp_unsupported_reason

    if inferlab_session.device.is_cuda:
        pytest.skip("on GPU the parallel layout runs in vLLM's engine: use vllm_model")
    if parallel.pipeline > 1:
        pytest.skip("pipeline parallel on CPU: transformers' plan splits tensors only; vLLM runs pipelines on GPU")
    reason = tp_unsupported_reason(model.in_process_module("tensor parallelism").config, parallel.tensor)
    if reason:
        pytest.skip(f"{model.info.model.name}: {reason}")
    try:
        return inferlab_session.engines.tensor_parallel_engine(model, parallel.tensor)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def vllm_model(inferlab_session: LabSession, parallel: ParallelSpec) -> Engine:
    """``--inferlab-model`` in vLLM's in-process engine with the ``parallel`` layout (GPU, extra
    ``[gpu]``); skips with the reason where vLLM cannot run (not installed, no GPU, too few GPUs)."""
    from pytest_inferlab.engines.vllm_engine import unavailable_reason

    reason = unavailable_reason(inferlab_session.device, parallel)
    if reason:
        pytest.skip(f"vllm: {reason}")
    return inferlab_session.engines.vllm_engine(parallel)


@pytest.fixture
def batching(request: pytest.FixtureRequest) -> BatchingSpec:
    """The batching engine: the (indirect) parameter, ``sequential``, ``static``, ``continuous`` or a
    BatchingSpec with settings; default static. Pass it to ``lab.measure(..., batching=batching)``."""
    return axis_value(request, AXES["batching"])


@pytest.fixture
def load(request: pytest.FixtureRequest, inferlab_session: LabSession) -> LoadSpec:
    """The arrival process: the (indirect) parameter (``closed:4``, ``poisson:2.5``, ``constant:1``,
    ``burst:8@0.5`` or a LoadSpec); default closed:1. Pass it to ``lab.measure(..., load=load)``."""
    seed = inferlab_session.settings.seed
    return axis_value(request, Axis("load", "closed:1", lambda value: parse_load(value, seed)))


@pytest.fixture
def workload_overrides() -> dict[str, Any]:
    """Field overrides applied to every workload (override in a conftest.py to size the run)."""
    return {}


@pytest.fixture
def workload(request: pytest.FixtureRequest, workload_overrides: dict[str, Any],
             inferlab_session: LabSession) -> WorkloadSpec:
    """The workload spec: the indirect parameter (registry name or WorkloadSpec), default short-chat,
    with ``workload_overrides`` applied, then the command line's (--inferlab-prompts, -requests,
    -input-tokens, -output-tokens): command line, then the suite, then the workload's defaults."""
    spec = axis_value(request, AXES["workload"])
    try:
        spec = dataclasses.replace(spec, **workload_overrides)
    except (TypeError, ValueError) as exc:
        pytest.fail(f"workload_overrides {workload_overrides!r} do not fit workload {spec.name!r}: {exc}", pytrace=False)
    return with_command_line(spec, inferlab_session.workload_overrides)


def with_command_line(spec: WorkloadSpec, given: dict[str, Any]) -> WorkloadSpec:
    """``spec`` with the command line's workload fields; prompts replace text prompt sets only
    (a synthetic or trace workload keeps its own prompts)."""
    fields = {k: v for k, v in given.items() if k != "prompts" or spec.prompts not in ("synthetic", "trace")}
    try:
        return dataclasses.replace(spec, **fields)
    except (TypeError, ValueError) as exc:
        pytest.fail(f"the command line's workload fields {fields!r} do not fit workload {spec.name!r}: {exc}",
                    pytrace=False)


@pytest.fixture
def lab(request: pytest.FixtureRequest, inferlab_session: LabSession) -> Lab:
    """The recording fixture: ``lab.measure(model, workload, batch_size=...)`` measures and records."""
    return Lab(inferlab_session, request)
