"""Defaults for the optimization suites: offline, and sized so `pytest suites/` on the embedded
model takes minutes on 2 CPU cores (full-size workloads on GPU)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402

# On CPU each case runs 4 requests of 32 new tokens per round: enough for stable medians.
CPU_WORKLOAD = {"count": 4, "output_tokens": 32}


@pytest.fixture
def workload_overrides(inferlab_device):
    return CPU_WORKLOAD if inferlab_device.kind == "cpu" else {}
