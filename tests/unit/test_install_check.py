"""`make install` says what is wrong on a machine unlike this one (tools/install_check.py)."""

import subprocess
import sys
from pathlib import Path

import install_check

ROOT = Path(__file__).resolve().parents[2]


def test_the_toolchain_check_names_what_is_missing_and_the_packages():
    assert install_check.toolchain_problem(lambda name: f"/usr/bin/{name}") is None
    problem = install_check.toolchain_problem(lambda name: None)
    assert "needs cmake and a C++ compiler" in problem and "apt-get install cmake g++" in problem
    only_cmake = install_check.toolchain_problem(lambda name: "/usr/bin/cmake" if name == "cmake" else None)
    assert "needs a C++ compiler" in only_cmake and "needs cmake" not in only_cmake


def test_torch_is_imported_and_its_build_named():
    ok, line = install_check.torch_report()  # this environment's own torch
    import torch

    assert ok and line.startswith(f"install: torch {torch.__version__}, ")
    assert ("CPU build" in line) == (torch.version.cuda is None)


def test_a_cuda_build_without_its_libraries_names_both_commands():
    def run(argv):
        return subprocess.CompletedProcess(argv, 1, "", "Traceback ...\nOSError: libcudart.so.12: cannot open shared "
                                                        "object file: No such file or directory")

    ok, line = install_check.torch_report(run=run)
    assert not ok and "CUDA build installed without its CUDA libraries" in line
    assert install_check.CPU_COMMAND in line and install_check.CUDA_COMMAND in line
    ok, line = install_check.torch_report(run=lambda argv: subprocess.CompletedProcess(argv, 1, "", "ImportError: x"))
    assert not ok and "torch does not import (ImportError: x)" in line


def test_make_install_runs_both_checks_and_the_tool_refuses_a_wrong_word():
    makefile = (ROOT / "Makefile").read_text()
    assert "tools/install_check.py toolchain" in makefile and "tools/install_check.py torch" in makefile
    assert makefile.index("install_check.py toolchain") < makefile.index("-r $(LOCK)")  # before the build
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "install_check.py"), "everything"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr
