"""Energy over a case: NVML's total-energy counter on GPU, RAPL on CPU where readable.

Both counters are whole-device (whole-package for RAPL): other work on the device is counted too.
Absent counters are reported with the reason, never as 0 J.
"""

from __future__ import annotations

from pathlib import Path

from pytest_inferlab.device import Device

RAPL_PACKAGE = Path("/sys/class/powercap/intel-rapl:0/energy_uj")


class NvmlEnergy:
    def __init__(self, index: int) -> None:
        import pynvml  # nvidia-ml-py, extra [gpu]

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)

    def read_j(self) -> float:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000.0  # mJ -> J


class RaplEnergy:
    def __init__(self) -> None:
        self.read_j()  # fails here, not mid-case, when unreadable

    def read_j(self) -> float:
        return int(RAPL_PACKAGE.read_text()) / 1e6


def energy_counter(device: Device) -> tuple[NvmlEnergy | RaplEnergy | None, str | None]:
    """(counter, None) or (None, why there is none)."""
    if device.is_cuda:
        try:
            return NvmlEnergy(device.index or 0), None
        except ImportError:
            return None, "pynvml not installed (pip install 'pytest-inferlab[gpu]')"
        except Exception as exc:  # NVMLError_* : library missing, no permission, unsupported GPU
            return None, f"NVML unavailable: {exc}"
    try:
        return RaplEnergy(), None
    except (OSError, ValueError) as exc:
        return None, f"RAPL not readable on this CPU machine ({type(exc).__name__})"


class EnergyMeter:
    """Counter delta over a window; ``result`` gives (joules or None, reason or None)."""

    def __init__(self, device: Device) -> None:
        self.counter, self.reason = energy_counter(device)
        self._start: float | None = None
        self._end: float | None = None

    @property
    def started(self) -> bool:
        return self._start is not None

    def start(self) -> None:
        if self.counter is not None:
            self._start = self.counter.read_j()

    def stop(self) -> None:
        if self.counter is not None:
            self._end = self.counter.read_j()

    def result(self) -> tuple[float | None, str | None]:
        if self._start is None or self._end is None:
            return None, self.reason or "energy counter not read"
        if self._end < self._start:
            return None, "energy counter wrapped or reset during the case"
        return self._end - self._start, None
