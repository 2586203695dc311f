"""Measurement discipline in one place: one round = every request once, in batches, timed."""

from __future__ import annotations

import time
from typing import Sequence

from pytest_inferlab.engines import Engine
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.ground.trace import Request, RoundTrace


def batches(requests: Sequence[Request], batch_size: int) -> list[Sequence[Request]]:
    return [requests[i : i + batch_size] for i in range(0, len(requests), batch_size)]


def run_round(engine: Engine, requests: Sequence[Request], batch_size: int, sampling: SamplingSpec,
              warmup: bool = False) -> RoundTrace:
    """Run the workload once, ``batch_size`` requests at a time, on the calling thread."""
    t_start = time.perf_counter()
    traces = []
    for batch in batches(requests, batch_size):
        traces.extend(engine.generate(batch, sampling))
    return RoundTrace(t_start, time.perf_counter(), tuple(traces), warmup)
