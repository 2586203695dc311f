"""pytest-inferlab: LLM inference optimization as parametrized pytest suites.

Importing this package imports no torch: engines load their libraries when they are used.
"""

from .batching import BatchingSpec, batchers
from .load import LoadSpec, arrival_processes
from .metrics import SLO
from .registry import Registry, UnknownNameError
from .specs import KVCacheSpec, ModelSpec, QuantSpec, RunSpec, SamplingSpec, SpeculativeSpec, WorkloadSpec
from .workloads import workloads

__version__ = "0.1.0"

__all__ = [
    "SLO", "BatchingSpec", "KVCacheSpec", "LoadSpec", "ModelSpec", "QuantSpec", "Registry", "RunSpec", "SamplingSpec",
    "SpeculativeSpec", "UnknownNameError", "WorkloadSpec", "__version__", "arrival_processes", "batchers", "workloads",
]
