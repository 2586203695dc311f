"""Was the case measured alone? CPU time used by other processes, other processes on the GPU.

CPU: machine-wide busy time from /proc/stat minus this process's own CPU time, as a share of
the machine's capacity over the case. (Host contention invisible to the guest, e.g. a noisy
neighbour's memory traffic, cannot be seen here; the verdict's run-to-run noise covers it.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pytest_inferlab.device import Device
from pytest_inferlab.ground.processes import MEASURED_PIDS

PROC_STAT = Path("/proc/stat")


def _machine_busy_s() -> float:
    fields = [int(v) for v in PROC_STAT.read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user..steal; guest is inside user




def _process_cpu_s(pid: int) -> float:
    """CPU seconds of a live process and its descendants (a launcher's ranks); 0 once gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in tree:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + sum(_process_cpu_s(pid) for pid in MEASURED_PIDS)


def other_gpu_processes(index: int) -> list[int]:
    """PIDs of other processes with a context on CUDA device ``index`` (empty when NVML is absent)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except Exception:
        return []
    return sorted(p.pid for p in procs if p.pid != os.getpid())


class InterferenceProbe:
    """``start()``/``stop()`` around a case; ``result()`` -> (other CPU share or None, details)."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self._start: tuple[float, float, float] | None = None
        self._end: tuple[float, float, float] | None = None
        self.gpu_others: list[int] = []

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            return time.perf_counter(), _machine_busy_s(), _own_cpu_s()
        except (OSError, ValueError, IndexError):
            return None

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> None:
        self._end = self._read()
        if self.device.is_cuda:
            self.gpu_others = other_gpu_processes(self.device.index or 0)

    def other_cpu_share(self) -> float | None:
        if self._start is None or self._end is None:
            return None
        wall = self._end[0] - self._start[0]
        other = (self._end[1] - self._start[1]) - (self._end[2] - self._start[2])
        return max(0.0, other) / (wall * (os.cpu_count() or 1)) if wall > 0 else None
