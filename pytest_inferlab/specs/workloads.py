"""The named workloads (``short-chat``, ``copy-edit``, ...): specs a suite asks for by name."""

from __future__ import annotations

from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.core import WorkloadSpec

workloads: Registry[WorkloadSpec] = Registry("workloads")

for _spec in (
    WorkloadSpec(name="short-chat", prompts="short_chat", count=8, output_tokens=64),
    WorkloadSpec(name="long-context", prompts="long_context", count=4, output_tokens=64),
    WorkloadSpec(name="copy-edit", prompts="copy_edit", count=8, output_tokens=96),
    WorkloadSpec(name="code", prompts="code", count=4, output_tokens=64),
    WorkloadSpec(name="synthetic", prompts="synthetic", count=8, output_tokens=64, input_tokens=256),
    # Realistic traffic (docs/traffic.md): wide lengths, shared prefixes, conversations, a replayed trace.
    WorkloadSpec(name="wide-lengths", prompts="synthetic", count=16, input_lengths="lognormal:256,0.7,16,2048",
                 output_lengths="normal:64,32,8,256"),
    WorkloadSpec(name="shared-prefix", prompts="synthetic", count=16, prefix="4x256",
                 input_lengths="normal:64,16,16,128"),
    WorkloadSpec(name="multi-turn", prompts="synthetic", count=12, sessions="3@1", input_lengths="normal:128,32,32,256"),
    WorkloadSpec(name="trace-chat", prompts="trace", trace="synthetic-chat", count=32),
):
    workloads.register(_spec.name, _spec)


def resolve_workload(value: str | WorkloadSpec) -> WorkloadSpec:
    return value if isinstance(value, WorkloadSpec) else workloads.get(value)
