"""Peak memory of one case: exact, not sampled.

CPU: Linux keeps the process's peak RSS (VmHWM) and resets it when "5" is written to
/proc/self/clear_refs, so a case's peak is read after a reset. CUDA: torch's peak statistics.
"""

from __future__ import annotations

import re
from pathlib import Path

from pytest_inferlab.device import Device

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _vm_hwm_bytes() -> int:
    match = re.search(r"^VmHWM:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise OSError("VmHWM missing from /proc/self/status")
    return int(match.group(1)) * 1024


class PeakMemory:
    """``start()`` before the case, ``stop()`` after: peaks in bytes, or reasons they are absent."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.unavailable: str | None = None

    def start(self) -> None:
        if self.device.is_cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device.index)
            return
        try:
            _CLEAR_REFS.write_text("5")
            _vm_hwm_bytes()
        except OSError as exc:
            self.unavailable = f"peak RSS cannot be reset on this system ({exc})"

    def stop(self) -> tuple[dict[str, int], dict[str, str]]:
        if self.device.is_cuda:
            import torch

            return {
                "peak_mem_bytes": torch.cuda.max_memory_allocated(self.device.index),
                "peak_mem_reserved_bytes": torch.cuda.max_memory_reserved(self.device.index),
            }, {}
        if self.unavailable:
            return {}, {"peak_mem_bytes": self.unavailable}
        return {"peak_mem_bytes": _vm_hwm_bytes()}, {"peak_mem_reserved_bytes": "CUDA only"}
