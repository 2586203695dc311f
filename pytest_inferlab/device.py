"""The device a session runs on, and the one place that synchronizes it around timing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Device:
    kind: str  # "cpu" or "cuda"
    index: int | None = None

    @property
    def torch_name(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    def sync(self) -> None:
        """Wait for queued kernels so a perf_counter reading means 'done'."""
        if self.is_cuda:
            import torch

            torch.cuda.synchronize(self.index)


CPU = Device("cpu")


def device_named(torch_name: str) -> Device:
    """The Device whose ``torch_name`` is ``torch_name`` (``cpu``, ``cuda:1``): how a child process is told."""
    kind, _, index = torch_name.partition(":")
    return Device(kind, int(index)) if index else Device(kind)


def cuda_device(index: int) -> Device:
    """Device ``index`` or a message that lists what is there (never a CPU fall-back)."""
    import torch

    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (CPU-only build)"
        raise LookupError(
            f"--inferlab-gpu={index}: no CUDA device is visible (torch {torch.__version__}, CUDA build: {build}). "
            "Run without --inferlab-gpu to measure on the CPU, or install a CUDA build of torch (README: GPU set-up)."
        )
    count = torch.cuda.device_count()
    if index >= count:
        names = ", ".join(f"{i}: {torch.cuda.get_device_name(i)}" for i in range(count))
        raise LookupError(f"--inferlab-gpu={index}: no such device; visible CUDA devices are {names}")
    return Device("cuda", index)
