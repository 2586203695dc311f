"""How fast is the host right now? A fixed reference kernel timed just before and after a case.

On a shared VM the host's speed drifts (other tenants, frequency, memory traffic) by 10-20% over
minutes, invisibly to the guest. Timing a fixed memory-bound kernel (GEMVs over a 256 MB matrix)
beside each case and judging timings in units of it cancels most of that drift: on the 2-core
development VM the run-to-run noise of the decode lower quartile fell from 6.6% to 2.6%.

The matrix exists only while the kernel is timed and is freed before the case's peak-memory
window opens, so it never shows in ``peak_mem_bytes``. CPU only: a GPU's speed does not follow
the host's, and a GPU case is judged on its raw timings.
"""

from __future__ import annotations

import mmap
import statistics
import time

from pytest_inferlab.device import Device

MATRIX_SIDE = 8192  # 8192^2 fp32 = 256 MiB
PASSES = 8


def reference_seconds(side: int = MATRIX_SIDE, passes: int = PASSES) -> float:
    """Seconds for ``passes`` matrix-vector products over a fresh ``side`` x ``side`` fp32 matrix.

    The matrix lives in its own anonymous mapping, unmapped on return: a heap allocation could
    come back as pages malloc kept resident, or stay resident after it, depending on the process's
    allocator settings, and the kernel's footprint would then leak into the next case's peak.
    """
    import torch

    block = mmap.mmap(-1, side * side * 4)
    try:
        matrix = torch.frombuffer(block, dtype=torch.float32).view(side, side)
        matrix.fill_(1.0)  # first touch of the pages is not what we time
        vector = torch.ones(side)
        torch.mv(matrix, vector)
        start = time.perf_counter()
        for _ in range(passes):
            torch.mv(matrix, vector)
        seconds = time.perf_counter() - start
        del matrix
    finally:
        block.close()
    return seconds


class HostSpeed:
    """``before()`` and ``after()`` a case; ``seconds`` is the reference time (None when off)."""

    def __init__(self, device: Device, enabled: bool) -> None:
        self.enabled = enabled and not device.is_cuda
        self.samples: list[float] = []

    def before(self) -> None:
        if self.enabled:
            self.samples.append(reference_seconds())

    after = before

    @property
    def seconds(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None
