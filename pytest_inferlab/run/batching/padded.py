"""Sequential and static (padded) batching, served on the calling thread.

The engine's ``generate`` runs on the calling thread (docs/architecture.md: a worker thread loses
the torch thread settings), so arrivals are a schedule this loop consults between batches: when the engine
is busy, arrivals wait in the queue (that wait is in their TTFT); when it is idle, the loop sleeps
until the next arrival, and how late it wakes is the load generator's own lag.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Sequence

from pytest_inferlab.device import Device
from pytest_inferlab.specs.load import LoadSpec
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.ground.trace import Request, RequestTrace, RoundTrace
from pytest_inferlab.run.batching import Arrivals, BatchingSpec, budget_failures, finish_round

DEFAULT_MAX_BATCH = 16


@dataclass(frozen=True, slots=True)
class PaddedBatcher:
    """Whatever has arrived (up to ``max_batch``) runs as one left-padded ``generate`` call."""

    fixed_max_batch: int | None  # sequential: 1, not a setting

    def unsupported(self, device: Device) -> str | None:
        return None

    def lossless_claim(self, spec: BatchingSpec) -> str | None:
        return None if self.fixed_max_batch == 1 else f"static batching (max_batch={self.max_batch(spec)})"

    def max_batch(self, spec: BatchingSpec) -> int:
        if self.fixed_max_batch is not None:
            if spec.settings:
                raise ValueError(f"batching {spec.kind} takes no settings (got {dict(spec.settings)})")
            return self.fixed_max_batch
        value = spec.setting("max_batch", DEFAULT_MAX_BATCH)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"batching {spec.kind}: max_batch={value!r} must be an integer >= 1")
        return value

    def serve(self, engine: Any, requests: Sequence[Request], load: LoadSpec, sampling: SamplingSpec,
              spec: BatchingSpec, budget_s: float) -> RoundTrace:
        max_batch = self.max_batch(spec)
        t0 = time.perf_counter()
        arrivals = Arrivals(load, requests, t0)
        queue: list[tuple[float, Request]] = []
        traces: list[RequestTrace] = []
        cut = False
        while arrivals or queue:
            now = time.perf_counter()
            if now - t0 > budget_s:
                traces += budget_failures(queue + arrivals.remaining(), budget_s)
                cut = True
                break
            queue += arrivals.take_due(now)
            if not queue:
                time.sleep(max(0.0, arrivals.next_time() - now))
                queue += arrivals.take_due(time.perf_counter(), observed=True)
                continue
            batch, queue = queue[:max_batch], queue[max_batch:]
            done = serve_batch(engine, batch, sampling)
            traces += done
            arrivals.completed([(r, t) for (_, r), t in zip(batch, done)], time.perf_counter())
        return finish_round(t0, traces, arrivals, cut)


def serve_batch(engine: Any, batch: Sequence[tuple[float, Request]], sampling: SamplingSpec) -> list[RequestTrace]:
    """One ``generate`` call for the batch. If the whole call fails, each request is retried alone,
    so one bad request fails by itself and the others are served (their TTFT keeps the lost time)."""
    requests = [r for _, r in batch]
    out = engine.generate(requests, sampling)
    if len(requests) > 1 and not any(t.ok for t in out):
        out = [engine.generate([r], sampling)[0] for r in requests]
    return [dataclasses.replace(t, t_send=arrival, t_admit=t.t_send) for (arrival, _), t in zip(batch, out)]


SEQUENTIAL = PaddedBatcher(1)
STATIC = PaddedBatcher(None)
