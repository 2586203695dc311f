"""Frozen specs: what a case measures, the first stage of the flow (docs/architecture.md).

Every spec has a stable ``spec_id`` (a hash of its canonical JSON): the baseline key and the asv
parameter. Variants are derived with ``dataclasses.replace`` or a spec's ``of(...)``.
"""

from pytest_inferlab.specs.core import (KVCacheSpec, ModelSpec, QuantSpec, RunSpec, SamplingSpec, SpeculativeSpec,
                                        WorkloadSpec, spec_dict, stable_id)
from pytest_inferlab.specs.batching import BatchingSpec
from pytest_inferlab.specs.load import LoadSpec, parse_load
from pytest_inferlab.specs.parallel import ParallelSpec
from pytest_inferlab.specs.slo import SLO, Bound

__all__ = ["SLO", "Bound", "BatchingSpec", "KVCacheSpec", "LoadSpec", "ModelSpec", "ParallelSpec", "QuantSpec", "RunSpec",
           "SamplingSpec", "SpeculativeSpec", "WorkloadSpec", "parse_load", "spec_dict", "stable_id"]
