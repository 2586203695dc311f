"""`inferlab --version`, `inferlab runs` and `latest` wherever a run folder is expected."""

import pytest

from pytest_inferlab import cli
from pytest_inferlab.record.run_folder import RunFolderError, finish_manifest, list_runs, resolve_run, start_manifest


def make_run(results, run_id, exit_status=0, interrupted=False):
    folder = results / "runs" / run_id
    folder.mkdir(parents=True)
    start_manifest(folder, run_id, ["pytest", "suites/"])
    (folder / "case-abc.json").write_text("{}")
    finish_manifest(folder, run_id, ["pytest", "suites/"], exit_status, interrupted=interrupted)
    return folder


def test_the_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    from importlib.metadata import version

    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"pytest-inferlab {version('pytest-inferlab')}"


def test_runs_are_listed_oldest_first_and_latest_names_the_newest(tmp_path, capsys, monkeypatch):
    old = make_run(tmp_path / ".inferlab", "20261204T100000Z-aaaaaa")
    new = make_run(tmp_path / ".inferlab", "20261205T100000Z-bbbbbb", exit_status=1)
    (tmp_path / ".inferlab" / "runs" / "not-a-run").mkdir()
    assert [run.folder for run in list_runs(tmp_path / ".inferlab")] == [old, new]
    assert [(run.status, run.records, run.exit_status) for run in list_runs(tmp_path / ".inferlab")] == \
        [("finished", 1, 0), ("finished", 1, 1)]
    monkeypatch.chdir(tmp_path)
    assert cli.main(["runs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith(old.name) and out[2].startswith(new.name) and out[-1] == f"latest: {new.relative_to(tmp_path)}"
    assert resolve_run("latest") == new.relative_to(tmp_path)
    assert resolve_run(tmp_path / ".inferlab" / "latest") == new
    assert resolve_run(old) == old  # a path is a path


def test_latest_without_runs_is_an_error_naming_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunFolderError, match="latest: no runs under .inferlab"):
        resolve_run("latest")
    assert cli.main(["report", "latest"]) == 2
    assert "latest: no runs under .inferlab" in capsys.readouterr().err
    assert cli.main(["runs"]) == 2
