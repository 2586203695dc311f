"""Measured memory bandwidth of a device, the memory-bound limit of decoding (measure/catalog.py: decode_bw_fraction).

Decoding one token reads every weight once, so ``model_bytes / TPOT`` is the bandwidth a decode
step achieves; set against a measured copy bandwidth of the device it says how close the variant
runs to the limit (a quantized model that reads fewer bytes yet is no faster is compute-bound).
"""

from __future__ import annotations

import functools
import time

from pytest_inferlab.device import Device

COPY_BYTES = 256 * 2**20  # far beyond any cache of the machines in view
REPEATS = 5


@functools.lru_cache(maxsize=4)
def copy_bandwidth_gb_per_s(device: Device) -> float:
    """Best of ``REPEATS`` device-to-device copies of 256 MiB: bytes read + written per second, in GB/s."""
    import torch

    source = torch.ones(COPY_BYTES // 4, dtype=torch.float32, device=device.torch_name)
    target = torch.empty_like(source)
    target.copy_(source)  # first touch of the pages is not what we time
    best = float("inf")
    for _ in range(REPEATS):
        device.sync()
        start = time.perf_counter()
        target.copy_(source)
        device.sync()
        best = min(best, time.perf_counter() - start)
    del source, target
    return 2 * COPY_BYTES / best / 1e9


def decode_bandwidth_gb_per_s(model_bytes: int | None, tpot_ms: float | None) -> float | None:
    """Weight bytes read per second by decode steps (each step reads every weight once)."""
    if not model_bytes or not tpot_ms:
        return None
    return model_bytes / (tpot_ms / 1e3) / 1e9
