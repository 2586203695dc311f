"""Defaults for the optimization suites: offline, and sized so `pytest suites/` on the embedded
model takes minutes on 2 CPU cores (full-size workloads on GPU)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402

# Every CPU-size override of the suites, in one place (full-size workloads on GPU). By default a
# case runs 4 requests of 32 new tokens per round: enough for stable medians. Speculative cases run
# one request of 64 new tokens (each round runs both paths): long enough for a copy-edit answer to
# get past its preamble into the copied text.
CPU_WORKLOADS = {
    "default": {"count": 4, "output_tokens": 32},
    "test_speculative": {"count": 1, "output_tokens": 64},
}


@pytest.fixture
def workload_overrides(inferlab_device, request):
    if inferlab_device.kind != "cpu":
        return {}
    return CPU_WORKLOADS.get(request.module.__name__.rpartition(".")[2], CPU_WORKLOADS["default"])
