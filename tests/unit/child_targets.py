"""Functions tests/unit/test_child.py runs in child processes (ground/child.py imports them by name)."""

import os
import signal
import time


def count(job, report):
    for done in range(job["n"] + 1):
        report(done, job["n"], "step")
    print("library noise on stdout")  # goes to the child's log, never into the progress channel
    return {"pid": os.getpid(), "twice": job["n"] * 2}


def fail(job, report):
    raise ValueError(f"bad setting {job['setting']!r}")


def crash(job, report):
    report(1, 3, "step")
    os.kill(os.getpid(), signal.SIGSEGV)


def hang(job, report):
    time.sleep(60)
