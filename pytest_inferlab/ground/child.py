"""One-off preparation in a child process: builds and computations that must not share the
measuring process's state.

An in-process GPTQ build left GPTQModel's worker threads behind and every later decode on the
calling thread ran 1.7x slower (measured: a 1x576 linear 4x slower; 2026-12-05); lm-eval's import
alone adds ~200 MB to the process's RSS for the rest of the run. So builds (GPTQ, AWQ, GGUF rungs),
reference log-probabilities and lm-eval runs happen here: a child ``python -m
pytest_inferlab.ground.child`` imports the target function, calls it with a JSON payload and a
``report(done, total, what)`` callback, and writes its JSON result. Progress travels on a pipe of
its own (libraries print banners and bars on stdout/stderr, which go to a log file whose tail an
error shows). A child that crashes, or runs past its time, is an error naming what it was doing.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

PROGRESS_FD_ENV = "INFERLAB_CHILD_PROGRESS_FD"
DEFAULT_TIMEOUT_S = 3600.0  # a GPTQ build of a 135M model took 570 s on a slow hour; larger models take longer
LOG_TAIL_LINES = 25


@dataclass(frozen=True, slots=True)
class Step:
    """A child's progress: ``done`` of ``total`` units of ``what`` (layers, tensors, items)."""

    done: int
    total: int
    what: str


Report = Callable[[int, int, str], None]  # what a child's function reports with
Progress = Callable[[Step], None]  # what the parent hears (e.g. a StepProgress writing the live line)


class ChildError(RuntimeError):
    """A child that failed, crashed or ran out of time; the message says which and shows its log."""


def run_child(target: str, payload: dict[str, Any], *, what: str, progress: Progress | None = None,
              timeout_s: float = DEFAULT_TIMEOUT_S, env: dict[str, str] | None = None) -> Any:
    """``target`` ("package.module:function") called as ``function(payload, report)`` in a new Python
    process; its return value (JSON) comes back. ``what`` names the job in errors."""
    with tempfile.TemporaryDirectory(prefix="inferlab-child-") as folder:
        job, result, log = Path(folder) / "job.json", Path(folder) / "result.json", Path(folder) / "child.log"
        job.write_text(json.dumps({"target": target, "payload": payload}))
        read_end, write_end = os.pipe()
        try:
            with open(log, "wb") as log_file:
                process = subprocess.Popen(
                    [sys.executable, "-m", "pytest_inferlab.ground.child", str(job), str(result)],
                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, pass_fds=(write_end,),
                    env={**(env or os.environ), PROGRESS_FD_ENV: str(write_end)}, start_new_session=True)
            os.close(write_end)
            write_end = -1
            _follow(process, read_end, progress, timeout_s, what, log)
        finally:
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)
        return _result(process.returncode, result, what, log)


def _follow(process: subprocess.Popen, read_end: int, progress: Progress | None, timeout_s: float,
            what: str, log: Path) -> None:
    """Relay progress lines until the child exits; past ``timeout_s`` its process group is killed."""
    deadline = time.monotonic() + timeout_s
    pending = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            _kill(process)
            raise ChildError(f"{what}: still running after {timeout_s:.0f} s, stopped{_tail(log)}")
        ready, _, _ = select.select([read_end], [], [], min(left, 1.0))
        if ready:
            chunk = os.read(read_end, 65536)
            if not chunk:  # every writer closed: the child is ending
                try:
                    process.wait(timeout=max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _kill(process)
                    raise ChildError(f"{what}: still running after {timeout_s:.0f} s, stopped{_tail(log)}") from None
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if progress is not None and line.strip():
                    step = json.loads(line)
                    progress(Step(int(step["done"]), int(step["total"]), str(step["what"])))
        elif process.poll() is not None:
            return


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return ""
    return ("; its log ends:\n" + "\n".join(lines)) if lines else ""


def _result(returncode: int, result: Path, what: str, log: Path) -> Any:
    if result.is_file():
        outcome = json.loads(result.read_text())
        if outcome["ok"]:
            return outcome["result"]
        raise ChildError(f"{what}: {outcome['error']}\n{outcome['traceback']}")
    how = f"signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    raise ChildError(f"{what}: the child process died ({how}) before it answered{_tail(log)}")


def _reporter() -> Report:
    stream = os.fdopen(int(os.environ[PROGRESS_FD_ENV]), "w", buffering=1)

    def report(done: int, total: int, what: str) -> None:
        stream.write(json.dumps({"done": done, "total": total, "what": what}) + "\n")

    return report


def main(argv: list[str]) -> int:
    job_path, result_path = Path(argv[0]), Path(argv[1])
    job = json.loads(job_path.read_text())
    module_name, _, name = job["target"].partition(":")
    try:
        function = getattr(importlib.import_module(module_name), name)
        outcome = {"ok": True, "result": function(job["payload"], _reporter())}
    except Exception as exc:  # the parent raises it, with the child's traceback
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    temp = result_path.with_suffix(".tmp")
    temp.write_text(json.dumps(outcome))
    temp.replace(result_path)
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
