"""pytest-inferlab: LLM inference optimization as parametrized pytest suites.

Importing this package imports no torch: engines load their libraries when they are used.
"""

from .registry import Registry, UnknownNameError
from .specs import ModelSpec, RunSpec, SamplingSpec, WorkloadSpec
from .workloads import workloads

__version__ = "0.1.0"

__all__ = [
    "ModelSpec", "Registry", "RunSpec", "SamplingSpec", "UnknownNameError", "WorkloadSpec", "__version__", "workloads",
]
