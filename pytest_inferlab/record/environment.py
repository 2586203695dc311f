"""Who produced a number: library versions, device, threads, commit. Cheap and collected once."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from pytest_inferlab.device import Device
from pytest_inferlab.record.packages import lock_state
from pytest_inferlab.specs.core import stable_id

LIBRARIES = ("torch", "transformers", "accelerate", "gguf", "pytest", "pytest-benchmark", "pytest-inferlab", "vllm")
FINGERPRINT_KEYS = ("cpu_model", "device_name", "driver_version", "cuda_version", "torch", "transformers", "threads")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state(root: Path) -> dict[str, Any]:
    """Commit and whether the work tree had uncommitted changes; None outside a git checkout."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    seconds = git("show", "-s", "--format=%ct", "HEAD") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None,
            "branch": git("branch", "--show-current"), "commit_time": int(seconds) if seconds else None}


def device_facts(device: Device) -> dict[str, Any]:
    import torch

    facts: dict[str, Any] = {"device": device.kind, "cuda_version": torch.version.cuda,
                             "device_name": cpu_model(), "driver_version": None}
    if device.is_cuda:
        facts["device_name"] = torch.cuda.get_device_name(device.index)
        try:
            import pynvml

            pynvml.nvmlInit()
            facts["driver_version"] = pynvml.nvmlSystemGetDriverVersion()
        except Exception as exc:  # no pynvml or no NVML library: the fact is missing, not fatal
            facts["driver_version"] = None
            facts["driver_version_absent"] = f"{type(exc).__name__}: {exc}"
    return facts


def collect_environment(device: Device, root: Path) -> dict[str, Any]:
    """The environment record shared by every case of a session (threads are added per case)."""
    versions = library_versions()
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "arch": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "libraries": versions,
        "torch": versions["torch"],
        "transformers": versions["transformers"],
        "git": git_state(root),
        "lock": lock_state(root).to_json(),  # the run folder's packages.txt lists every package
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE"),
    }
    env.update(device_facts(device))
    return env


def machine_fingerprint(env: dict[str, Any]) -> dict[str, Any]:
    """What must match for two numbers to be comparable (docs/architecture.md, "Records and baselines"): hardware, stack, threads."""
    return {key: env.get(key) for key in FINGERPRINT_KEYS}


def machine_id(env: dict[str, Any]) -> str:
    """A folder-safe name for the fingerprint: readable device part + hash of everything."""
    name = re.sub(r"[^a-z0-9]+", "-", str(env.get("device_name") or "unknown").lower()).strip("-")
    return f"{name[:40]}-{stable_id(machine_fingerprint(env))[:8]}"
