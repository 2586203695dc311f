"""What `make install` checks, so that a machine unlike this one hears what is wrong and what to run.

    python tools/install_check.py toolchain   before the lock install: llama-cpp-python is built from
                                              its source package (cmake and a C/C++ compiler)
    .venv/bin/python tools/install_check.py torch
                                              after torch: it imports, and which build it is (CPU or
                                              the CUDA version); a CUDA build installed without its
                                              libraries (--no-deps from the default index) is named
                                              with the command that installs a working one

Standard library only (the toolchain check runs before the environment exists). Exit 0 with one
line saying what was found; exit 1 with what to do.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import Callable, Sequence

COMPILERS = ("c++", "g++", "clang++")
TOOLCHAIN_PACKAGES = ("Debian/Ubuntu: sudo apt-get install cmake g++; Fedora: sudo dnf install cmake gcc-c++; "
                      "macOS: xcode-select --install && brew install cmake")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CUDA_INDEX = "https://download.pytorch.org/whl/cu128"
CPU_COMMAND = f'make install TORCH_PIP_ARGS="--index-url {CPU_INDEX}"'
CUDA_COMMAND = f'make install TORCH_NO_DEPS= TORCH_PIP_ARGS="--index-url {CUDA_INDEX}"'
# What a CUDA build of torch says when it was installed without its CUDA libraries
MISSING_CUDA_LIBRARIES = ("libcudart", "libcublas", "libcudnn", "libnccl", "libcusparse", "libnvjitlink", "libcufft",
                          "libcurand", "libnvrtc", "libcupti")


def toolchain_problem(which: Callable[[str], str | None] = shutil.which) -> str | None:
    """What the llama.cpp build lacks (cmake, a C/C++ compiler), or None."""
    missing = ([] if which("cmake") else ["cmake"]) + ([] if any(which(c) for c in COMPILERS) else ["a C++ compiler"])
    if not missing:
        return None
    return (f"install: llama-cpp-python is built from source and needs {' and '.join(missing)} "
            f"({', '.join(('cmake', *COMPILERS))} on PATH); install them, then run make install again: "
            f"{TOOLCHAIN_PACKAGES}")


def torch_report(python: str = sys.executable,
                 run: Callable[[Sequence[str]], subprocess.CompletedProcess] | None = None) -> tuple[bool, str]:
    """(ok, line): torch's version and build as ``python`` imports it, or why it cannot and what to run."""
    run = run or (lambda argv: subprocess.run(argv, capture_output=True, text=True, timeout=300))
    done = run([python, "-c", "import torch; print(torch.__version__, torch.version.cuda or 'cpu', "
                               "torch.cuda.is_available())"])
    if done.returncode == 0:
        version, build, available = done.stdout.split()[-3:]
        what = "CPU build" if build == "cpu" else f"CUDA {build} build ({'a GPU is visible' if available == 'True' else 'no GPU visible'})"
        return True, f"install: torch {version}, {what}"
    error = (done.stderr or done.stdout).strip().splitlines()
    last = error[-1] if error else f"exit status {done.returncode}"
    if any(name in "\n".join(error) for name in MISSING_CUDA_LIBRARIES):
        return False, (f"install: torch is a CUDA build installed without its CUDA libraries ({last}). On a machine "
                       f"without a GPU install the CPU build: {CPU_COMMAND}; with a GPU, torch with its CUDA "
                       f"libraries: {CUDA_COMMAND}")
    return False, f"install: torch does not import ({last}); {CPU_COMMAND} installs the CPU build"


def main(argv: Sequence[str]) -> int:
    if list(argv) == ["toolchain"]:
        problem = toolchain_problem()
        print(problem or "install: cmake and a C++ compiler found (llama-cpp-python builds from source)",
              file=sys.stderr if problem else sys.stdout)
        return 1 if problem else 0
    if list(argv) == ["torch"]:
        ok, line = torch_report()
        print(line, file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    print("usage: install_check.py toolchain|torch", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
