"""Worker processes that share a round when one event loop cannot keep its schedule: spawned once
and kept for the session, each runs its share (loadgen/rounds.py) against the one machine clock; the
first to see the queue growing stops them all."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Sequence

from pytest_inferlab.ground.processes import MEASURED_PIDS
from pytest_inferlab.ground.trace import RoundTrace
from pytest_inferlab.loadgen.client import OpenAIClient
from pytest_inferlab.loadgen.rounds import LoadRound, LoadTarget, Share, ShareResult, assemble, split
from pytest_inferlab.specs.load import LoadSpec

START_AFTER_S = 1.0  # the shared clock starts this long after the round is handed out


class LoadProcesses:
    """Worker processes (spawned once, kept for the session) that each run a share of a round."""

    def __init__(self, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop = context.Event()
        self.pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_init_worker,
                                        initargs=(self.stop,))
        self.processes = processes
        # spawn and import in every worker now, not inside the first round's clock; their CPU is the
        # case's own, not interference
        self.pids = set(self.pool.map(_ready, [0.2] * processes))
        MEASURED_PIDS.update(self.pids)

    def serve(self, target: LoadTarget, prepared: Sequence[Any], load: LoadSpec, budget_s: float) -> RoundTrace:
        self.stop.clear()
        t0 = time.perf_counter() + START_AFTER_S
        shares = split(prepared, load, t0, self.processes)
        futures = [self.pool.submit(_run_share, target.client(), share, t0, budget_s, w == 0)
                   for w, share in enumerate(shares)]
        results = [f.result() for f in futures]
        for result in results:
            target.learned(result.quirks)
        return assemble(target, load, results, budget_s)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        MEASURED_PIDS.difference_update(self.pids)


_STOP: Any = None


def _ready(linger_s: float) -> int:
    time.sleep(linger_s)  # long enough that each call needs a worker of its own
    return os.getpid()


def _init_worker(stop: Any) -> None:
    global _STOP
    _STOP = stop


def _run_share(client: OpenAIClient, share: Share, t0: float, budget_s: float, sample_metrics: bool) -> ShareResult:
    return asyncio.run(LoadRound(client, share, t0, budget_s, sample_metrics=sample_metrics, stop=_STOP.is_set,
                                 announce=_STOP.set).run())
