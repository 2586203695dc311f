"""Requests to a server, sent as they arrive: each on its own thread at its scheduled time, the
server batching them as it does (vLLM and ``transformers serve --continuous-batching``
continuously). The calling thread only schedules and collects, so its lag is the generator's."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

from pytest_inferlab.device import Device
from pytest_inferlab.specs.load import LoadSpec
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.run.trace import Request, RequestTrace, RoundTrace
from pytest_inferlab.run.batching import Arrivals, BatchingSpec, budget_failures, finish_round


@dataclass(frozen=True, slots=True)
class ServerBatcher:
    def unsupported(self, device: Device) -> str | None:
        return None

    def serve(self, engine: Any, requests: Sequence[Request], load: LoadSpec, sampling: SamplingSpec,
              spec: BatchingSpec, budget_s: float) -> RoundTrace:
        if not engine.sends_requests:
            engine.send(requests[0], sampling)  # raises EngineCapabilityError, naming what to use instead
        t0 = time.perf_counter()
        deadline = t0 + budget_s
        arrivals = Arrivals(load, requests, t0)
        done: queue.Queue[RequestTrace] = queue.Queue()
        in_flight: dict[int, tuple[float, Request]] = {}
        traces: list[RequestTrace] = []
        cut = False
        while arrivals or in_flight:
            now = time.perf_counter()
            if now > deadline:  # threads cannot be cancelled: their requests count as not served
                traces += budget_failures(list(in_flight.values()) + arrivals.remaining(), budget_s)
                cut = True
                break
            for arrival, request in arrivals.take_due(now, observed=True):
                in_flight[request.index] = (arrival, request)
                threading.Thread(target=lambda r=request, a=arrival: done.put(engine.send(r, sampling, a)),
                                 daemon=True).start()
            try:
                trace = done.get(timeout=arrivals.wait_s(now, deadline))
            except queue.Empty:
                continue
            in_flight.pop(trace.index, None)
            traces.append(trace)
            arrivals.completed(1, time.perf_counter())
        return finish_round(t0, traces, arrivals, cut)


SERVER = ServerBatcher()
