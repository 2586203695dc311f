"""pytest-inferlab: LLM inference optimization as parametrized pytest suites.

Importing this package imports no torch: engines load their libraries when they are used.
"""

from pytest_inferlab.run.batching import BatchingSpec, batchers
from pytest_inferlab.specs.load import LoadSpec, arrival_processes
from pytest_inferlab.measure.metrics import SLO
from pytest_inferlab.registry import Registry, UnknownNameError
from pytest_inferlab.specs.core import KVCacheSpec, ModelSpec, QuantSpec, RunSpec, SamplingSpec, SpeculativeSpec, WorkloadSpec
from pytest_inferlab.run.workloads import workloads

__version__ = "0.1.0"

__all__ = [
    "SLO", "BatchingSpec", "KVCacheSpec", "LoadSpec", "ModelSpec", "QuantSpec", "Registry", "RunSpec", "SamplingSpec",
    "SpeculativeSpec", "UnknownNameError", "WorkloadSpec", "__version__", "arrival_processes", "batchers", "workloads",
]
