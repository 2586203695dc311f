"""Probes and the environment fingerprint on this (CPU) machine."""

import mmap
import subprocess

import pytest

from pytest_inferlab.device import CPU, Device, cuda_device
from pytest_inferlab.record.environment import git_state, machine_fingerprint, machine_id
from pytest_inferlab.run.probes.energy import EnergyMeter, energy_counter
from pytest_inferlab.run.probes.host_speed import HostSpeed
from pytest_inferlab.run.probes.memory import PeakMemory


def _resident_block(mib: int) -> mmap.mmap:
    """Fresh anonymous pages, touched so they are resident (malloc could hand back pages it kept)."""
    block = mmap.mmap(-1, mib * 2**20)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    return block


def test_peak_memory_is_reset_per_case_and_sees_an_allocation():
    probe = PeakMemory(CPU)
    _resident_block(300).close()
    probe.start()  # the 300 MiB peak above is forgotten here
    small, _ = probe.stop()
    probe.start()
    block = _resident_block(200)
    peak, absent = probe.stop()
    block.close()
    assert absent == {"peak_mem_reserved_bytes": "CUDA only"}
    assert peak["peak_mem_bytes"] >= small["peak_mem_bytes"] + 190 * 2**20
    assert small["peak_mem_bytes"] < peak["peak_mem_bytes"]


def test_host_speed_reference_is_timed_outside_the_peak_memory_window():
    host, memory = HostSpeed(CPU, enabled=True), PeakMemory(CPU)
    host.before()
    memory.start()
    peak, _ = memory.stop()
    host.after()
    assert len(host.samples) == 2 and all(0 < s < 10 for s in host.samples)
    assert host.seconds == sum(host.samples) / 2
    memory.start()
    host.before()  # inside the window, the 256 MiB matrix would show
    inside, _ = memory.stop()
    assert inside["peak_mem_bytes"] > peak["peak_mem_bytes"] + 200 * 2**20
    assert HostSpeed(CPU, enabled=False).seconds is None
    off_on_gpu = HostSpeed(Device("cuda", 0), enabled=True)
    off_on_gpu.before()
    assert off_on_gpu.seconds is None


def test_energy_is_absent_with_a_reason_never_zero():
    meter = EnergyMeter(CPU)
    meter.start()
    meter.stop()
    joules, reason = meter.result()
    if meter.counter is None:  # this machine has no readable RAPL
        assert joules is None and "RAPL" in reason
    else:
        assert joules is not None and joules >= 0


def test_nvml_without_a_gpu_says_why():
    counter, reason = energy_counter(Device("cuda", 0))
    assert counter is None
    assert reason.startswith("NVML unavailable") or "pip install 'pytest-inferlab[gpu]'" in reason


def test_missing_cuda_device_names_the_option_and_the_way_out():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(LookupError, match=r"--inferlab-gpu=0: no CUDA device is visible .*Run without --inferlab-gpu"):
        cuda_device(0)


def test_git_state_reports_commit_and_dirty(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    assert git_state(tmp_path)["commit"] is None  # not a checkout
    git("init", "-q", "-b", "main")
    (tmp_path / "f.txt").write_text("a")
    git("add", "f.txt")
    git("-c", "user.email=a@b", "-c", "user.name=n", "commit", "-qm", "init")
    state = git_state(tmp_path)
    assert len(state["commit"]) == 40 and state["dirty"] is False and state["branch"] == "main"
    (tmp_path / "f.txt").write_text("b")
    assert git_state(tmp_path)["dirty"] is True


def test_machine_id_depends_on_the_fingerprint_only():
    env = {"device_name": "NVIDIA H100 80GB HBM3", "driver_version": "550.1", "cuda_version": "12.4",
           "torch": "2.13.0", "transformers": "5.23.0", "threads": 16, "cpu_model": "x", "python": "3.11"}
    same = {**env, "python": "3.12", "git": {"commit": "abc"}}
    assert machine_id(env) == machine_id(same)
    assert machine_id(env).startswith("nvidia-h100-80gb-hbm3-")
    assert machine_id({**env, "threads": 8}) != machine_id(env)
    assert set(machine_fingerprint(env)) == {"cpu_model", "device_name", "driver_version", "cuda_version",
                                             "torch", "transformers", "threads"}
