"""pytest-inferlab: LLM inference optimization as parametrized pytest suites.

Importing this package imports no torch: engines load their libraries when they are used. The
public names: the specs, and the registries a project extends (``docs/architecture.md`` says how).
"""

from pytest_inferlab.engines.base import Engine, EngineInfo, engines
from pytest_inferlab.engines.sources import model_sources
from pytest_inferlab.measure.catalog import catalog as metrics
from pytest_inferlab.registry import Registry, UnknownNameError
from pytest_inferlab.run.batching import batchers
from pytest_inferlab.specs.workloads import workloads
from pytest_inferlab.specs import (SLO, BatchingSpec, KVCacheSpec, LoadSpec, ModelSpec, ParallelSpec, QuantSpec, RunSpec,
                                   SamplingSpec, SpeculativeSpec, WorkloadSpec)
from pytest_inferlab.specs.load import arrival_processes

__version__ = "0.1.0"

__all__ = [
    "SLO", "BatchingSpec", "Engine", "EngineInfo", "KVCacheSpec", "LoadSpec", "ModelSpec", "ParallelSpec", "QuantSpec",
    "Registry", "RunSpec", "SamplingSpec", "SpeculativeSpec", "UnknownNameError", "WorkloadSpec", "__version__",
    "arrival_processes", "batchers", "engines", "metrics", "model_sources", "workloads",
]
