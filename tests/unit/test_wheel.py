"""pip install pytest-inferlab into a project of its own: the built wheel carries its data (prompt sets,
tasks, traces), its pytest11 entry point, the command and the tune trial module; installed into a fresh
virtual environment (its dependencies the lab's own locked ones, through a path file, as the lab's
environment installs them), it runs a user's ten-line suite with a conftest.py and a prompt file from a
folder outside this repository."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ("pytest_inferlab/data/prompts/short_chat.jsonl", "pytest_inferlab/data/tasks/inferlab_mc.yaml",
        "pytest_inferlab/data/traces/synthetic-chat.jsonl", "pytest_inferlab/tune/trial_suite.py")

SUITE = '''import pytest


@pytest.mark.inferlab(rounds=1, warmup=0)
def test_mine(lab, model, workload):
    record = lab.measure(model, workload)
    assert record["output_tok_per_s"] > 0
'''
CONFTEST = '''import pytest


@pytest.fixture
def workload_overrides():
    return {"count": 2, "output_tokens": 4}
'''


@pytest.mark.slow
def test_the_wheel_installs_into_a_project_of_its_own_and_runs_its_suite(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT),
                            "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("pytest_inferlab-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for member in DATA:
        assert member in names, member
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[pytest11]\ninferlab = pytest_inferlab.plugin" in entry_points and "inferlab = pytest_inferlab.cli:main" in entry_points

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the lab's locked dependencies (torch, transformers, pytest, ...), not this checkout's editable install
    (Path(site) / "lab-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr

    project = tmp_path / "my-project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "conftest.py").write_text(CONFTEST)
    (project / "tests" / "test_mine.py").write_text(SUITE)
    (project / "prompts.jsonl").write_text(json.dumps({"prompt": "Say hi."}) + "\n" + json.dumps({"text": "A fruit?"}) + "\n")
    where = subprocess.run([str(python), "-c", "import pytest_inferlab; print(pytest_inferlab.__file__)"],
                           capture_output=True, text=True, check=True, cwd=project).stdout
    assert where.startswith(site), where  # the wheel's copy, not the checkout
    ran = subprocess.run([str(python), "-m", "pytest", "tests", "--inferlab-model=dummy:tiny",
                          "--inferlab-prompts=prompts.jsonl", "-p", "no:cacheprovider", "-q"],
                         capture_output=True, text=True, timeout=600, cwd=project)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    record = json.loads(next((project / ".inferlab" / "runs").glob("*/*test_mine*.json")).read_text())
    assert record["spec"]["workload"]["prompts"] == f"file:{(project / 'prompts.jsonl').resolve()}"
    assert record["spec"]["workload"]["count"] == 2
    version = subprocess.run([str(python), "-m", "pytest_inferlab.cli", "--version"], capture_output=True, text=True,
                             cwd=project)
    assert version.stdout.strip() == "pytest-inferlab 0.1.0"


def test_the_sdist_carries_the_data_and_builds_the_same_wheel(tmp_path):
    """What a package index serves beside the wheel: the source distribution, and the wheel built from it
    (as pip builds one where no wheel fits) carries the same data files and entry points."""
    import tarfile

    built = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path / "dist"),
                            str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    sdist = next((tmp_path / "dist").glob("pytest_inferlab-*.tar.gz"))
    root = sdist.name.removesuffix(".tar.gz")
    names = tarfile.open(sdist).getnames()
    for member in (*DATA, "pyproject.toml", "README.md"):
        assert f"{root}/{member}" in names, member
    rebuilt = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(sdist),
                              "-w", str(tmp_path / "wheel")], capture_output=True, text=True, timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr
    wheel = zipfile.ZipFile(next((tmp_path / "wheel").glob("pytest_inferlab-*.whl")))
    assert set(DATA) <= set(wheel.namelist())
    entry_points = wheel.read(next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))).decode()
    assert "[pytest11]\ninferlab = pytest_inferlab.plugin" in entry_points
