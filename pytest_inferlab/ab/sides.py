"""The two pytest processes of an A/B run: what each collects, and running both in lock-step.

Each side runs in its own tree with its own code imported first (PYTHONPATH), its own results
folder, no gate of its own (the A/B judges) and the lock-step turns of run/lockstep.py. A side that
crashes ends alone: the coordinator lets the other finish, and nothing it recorded is lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pytest_inferlab.ab.revisions import ABError
from pytest_inferlab.run.lockstep import Baton, TurnServer

PYTEST_OK = (0, 1)  # passed, or some tests failed: the side ran; anything else is a crash or bad usage
COLLECT_TIMEOUT_S = 600


@dataclass(frozen=True, slots=True)
class Side:
    name: str  # base | candidate
    root: Path  # its tree: the base worktree, or the working tree (first on PYTHONPATH)
    tree: Path  # where it runs: the same sub-folder of its root the command ran in
    python: str
    results: Path  # its --inferlab-results folder
    log: Path

    def env(self) -> dict[str, str]:
        paths = [str(self.root), os.environ.get("PYTHONPATH", "")]
        return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}

    def pytest(self, *args: str) -> list[str]:
        return [self.python, "-m", "pytest", "-p", "no:cacheprovider", *args]


@dataclass(frozen=True, slots=True)
class Selection:
    shared: list[str]  # in the candidate's order
    base_only: list[str]
    candidate_only: list[str]


@dataclass(frozen=True, slots=True)
class SideResult:
    side: Side
    returncode: int | None  # None: stopped at the time limit

    @property
    def crashed(self) -> bool:
        return self.returncode not in PYTEST_OK

    def run_folder(self) -> Path | None:
        runs = sorted((self.side.results / "runs").glob("*")) if (self.side.results / "runs").is_dir() else []
        return runs[-1] if runs else None

    def why(self) -> str:
        what = "ran past the time limit" if self.returncode is None else f"exited with code {self.returncode}"
        return f"the {self.side.name} side {what}; its log: {self.side.log}"


def collect(side: Side, args: Sequence[str]) -> list[str]:
    """The node ids ``args`` select in the side's tree."""
    done = subprocess.run(side.pytest("--collect-only", "-q", *args), cwd=side.tree, env=side.env(),
                          capture_output=True, text=True, timeout=COLLECT_TIMEOUT_S)
    if done.returncode not in (0, 5):
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ABError(f"collecting the {side.name} side in {side.tree} failed (exit {done.returncode}):\n{tail}")
    return [line.strip() for line in done.stdout.splitlines() if "::" in line and not line.startswith(" ")]


def select(base: Sequence[str], candidate: Sequence[str]) -> Selection:
    in_base, in_candidate = set(base), set(candidate)
    return Selection([t for t in candidate if t in in_base], [t for t in base if t not in in_candidate],
                     [t for t in candidate if t not in in_base])


def run_sides(sides: Sequence[Side], args: Sequence[str], selection: Selection, socket_path: Path,
              timeout_s: float) -> tuple[list[SideResult], Baton]:
    """Both sides at once, taking turns; each ends alone if the other is gone."""
    baton = Baton(selection.shared)
    server = TurnServer(socket_path, baton)
    running: dict[str, tuple[Side, subprocess.Popen]] = {}
    try:
        for side in sides:
            extra = selection.base_only if side.name == "base" else selection.candidate_only
            command = side.pytest(*args, *(f"--deselect={t}" for t in extra), f"--inferlab-ab-turns={socket_path}",
                                  f"--inferlab-ab-side={side.name}", f"--inferlab-results={side.results}",
                                  "--inferlab-no-gate", "--inferlab-confirm=0")
            side.log.parent.mkdir(parents=True, exist_ok=True)
            with side.log.open("w", encoding="utf-8") as log:
                log.write(f"$ {' '.join(command)}\n(in {side.tree})\n")
                log.flush()
                process = subprocess.Popen(command, cwd=side.tree, env=side.env(), stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
            running[side.name] = (side, process)
        return _wait(running, baton, time.monotonic() + timeout_s), baton
    finally:
        for _, process in running.values():
            _stop(process)
        server.close()


def _wait(running: dict[str, tuple[Side, subprocess.Popen]], baton: Baton, deadline: float) -> list[SideResult]:
    codes: dict[str, int | None] = {}
    while len(codes) < len(running) and time.monotonic() < deadline:
        for name, (_, process) in running.items():
            if name not in codes and process.poll() is not None:
                codes[name] = process.returncode
                baton.gone(name)
        time.sleep(0.2)
    return [SideResult(side, codes.get(name)) for name, (side, _) in running.items()]


def _stop(process: subprocess.Popen) -> None:
    """The side's whole process group (servers it started included), if it still runs."""
    if process.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=grace)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue
