"""inferlab tune on a shared RDB storage: a real PostgreSQL server started here (Debian's postgresql-15,
installed by .ci/run), two worker processes on one study, nothing measured twice, the front a single
worker finds. Skips with its reason where PostgreSQL or its driver is missing."""

from __future__ import annotations

import glob
import multiprocessing
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("optuna")
pytest.importorskip("psycopg2", reason="psycopg2-binary (the dev extra) drives PostgreSQL from SQLAlchemy")

from test_tune import FIGURES, FakeMeasure, write_study  # noqa: E402

from pytest_inferlab.tune.answer import answer  # noqa: E402
from pytest_inferlab.tune.run import run_tune  # noqa: E402
from pytest_inferlab.tune.space import load_space  # noqa: E402
from pytest_inferlab.tune.study import TuneRequest, open_study, results_of  # noqa: E402

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A PostgreSQL server in a temporary folder on loopback (as the postgres user when run as root:
    initdb refuses root); stopped and removed afterwards."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run does)")
    bin_dir = Path(found[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="inferlab-pg-", dir="/tmp"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: initdb refuses root")
        shutil.chown(folder, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = folder / "data"

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "tune", "--auth=trust", "--no-sync")
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60",
        "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")
    try:
        yield f"postgresql+psycopg2://tune@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _worker(study: str, results: str, log: str, storage: str) -> None:
    space = load_space(Path(study))
    run_tune(TuneRequest(space, Path(results), storage, exhaustive=True), confirm=False, say=lambda _: None,
             measure=FakeMeasure(Path(log)))


def test_two_workers_share_a_study_on_postgresql(tmp_path, postgres_url):
    study = write_study(tmp_path)
    log = tmp_path / "measured.txt"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_worker, args=(str(study), str(tmp_path / f"w{i}"), str(log), postgres_url))
               for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [0, 0]
    assert sorted(log.read_text().splitlines()) == sorted(FIGURES)  # each configuration measured once
    space = load_space(study)
    shared = answer(space, list(results_of(open_study(TuneRequest(space, tmp_path, postgres_url, exhaustive=True)),
                                           space).values()), [])
    _worker(str(study), str(tmp_path / "alone"), str(tmp_path / "alone.txt"), "")  # "": the journal file
    alone_study = open_study(TuneRequest(space, tmp_path / "alone", exhaustive=True))
    alone = answer(space, list(results_of(alone_study, space).values()), [])
    assert sorted(r.config.label for r in shared.front) == sorted(r.config.label for r in alone.front)
    assert shared.pick.config == alone.pick.config
