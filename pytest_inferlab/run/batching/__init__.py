"""Batching engines: how requests that arrive over time are grouped onto the model.

``sequential`` serves one request at a time, ``static`` serves whatever has arrived as one padded
batch (up to ``max_batch``) and takes the next batch only when the whole batch is done,
``continuous`` adds and retires requests at every decode step (transformers' continuous batching
manager with a paged cache of bounded size). Each is a registry entry that serves one round of a
workload under an arrival process (pytest_inferlab.specs.load) and returns per-request timestamps: a
request's ``t_send`` is when it arrived, so TTFT includes the time it waited in the queue.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import deque

from typing import Any, Protocol, Sequence

from pytest_inferlab.device import Device
from pytest_inferlab.specs.load import LoadSpec
from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.batching import BatchingSpec
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.run.trace import Request, RequestTrace, RoundTrace

# Budget-cut requests are failures under load, not missing data: they count against goodput.
BUDGET_ERROR = "not served: the round's time budget of {budget:.0f} s ran out (the engine is saturated at this load)"
# A load generator that delivers its arrivals this much slower than scheduled voids the case.
MIN_RATE_KEPT = 0.95
# A load client whose median lateness exceeds this share of the median TTFT (and 2 ms) voids the case:
# the lab's own accuracy bound (tests/unit/test_load_client_truth.py).
MAX_LAG_SHARE, MAX_LAG_MS = 0.02, 2.0


class Batcher(Protocol):
    def unsupported(self, device: Device) -> str | None:
        """None when it runs on ``device``; else the skip reason."""

    def serve(self, engine: Any, requests: Sequence[Request], load: LoadSpec, sampling: SamplingSpec,
              spec: BatchingSpec, budget_s: float) -> RoundTrace:
        """Serve ``requests`` arriving by ``load``; stop admitting work once ``budget_s`` has passed."""


batchers: Registry[Batcher] = Registry("batching engines")
batchers.register("sequential", "pytest_inferlab.run.batching.padded:SEQUENTIAL")
batchers.register("static", "pytest_inferlab.run.batching.padded:STATIC")
batchers.register("continuous", "pytest_inferlab.run.batching.continuous:CONTINUOUS")
batchers.register("server", "pytest_inferlab.run.batching.server:SERVER")


def resolve_batching(value: str | BatchingSpec) -> BatchingSpec:
    """A name or a BatchingSpec; an unknown name raises with the known ones (did-you-mean)."""
    return batchers.resolve(value, BatchingSpec)


def unsupported_batching_reason(spec: BatchingSpec, device: Device) -> str | None:
    reason = batchers.get(spec.kind).unsupported(device)
    return f"batching {spec.kind} on {device.torch_name}: {reason}" if reason else None


def serve_round(engine: Any, requests: Sequence[Request], spec: BatchingSpec, load: LoadSpec,
                sampling: SamplingSpec, budget_s: float, warmup: bool = False) -> RoundTrace:
    trace = batchers.get(spec.kind).serve(engine, requests, load, sampling, spec, budget_s)
    return dataclasses.replace(trace, warmup=warmup)


class Arrivals:
    """The requests still to come and when: a fixed schedule (open loop), or one new request per
    completion with ``concurrency`` in flight (closed loop). Times are ``perf_counter`` seconds."""

    def __init__(self, load: LoadSpec, requests: Sequence[Request], t0: float) -> None:
        self.load = load
        self.t0 = t0
        self.due: deque[tuple[float, Request]] = deque()
        self.waiting: deque[Request] = deque(requests)  # closed loop: not yet sent
        self.delivered: list[tuple[float, float]] = []  # (scheduled, delivered) of open-loop arrivals
        self.lags: list[float] = []
        if load.open_loop:
            self.due.extend((t0 + offset, r) for offset, r in zip(load.offsets(len(requests)), requests))
            self.waiting.clear()
        else:
            for _ in range(min(load.concurrency, len(self.waiting))):
                self.due.append((t0, self.waiting.popleft()))

    def __bool__(self) -> bool:
        return bool(self.due or self.waiting)

    def next_time(self) -> float | None:
        return self.due[0][0] if self.due else None

    def take_due(self, now: float, observed: bool = False) -> list[tuple[float, Request]]:
        """Arrivals due by ``now``. ``observed``: the caller was waiting for them, so ``now`` minus the
        scheduled time is the generator's own lateness (else the engine was busy: that is queueing)."""
        taken = []
        while self.due and self.due[0][0] <= now:
            arrival = self.due.popleft()
            taken.append(arrival)
            delivered = now if observed else arrival[0]
            if self.load.open_loop:
                self.delivered.append((arrival[0], delivered))
            if observed:
                self.lags.append(now - arrival[0])
        return taken

    def completed(self, count: int, now: float) -> None:
        """Closed loop: each completion sends that client's next request at ``now``."""
        for _ in range(count if not self.load.open_loop else 0):
            if self.waiting:
                self.due.append((now, self.waiting.popleft()))

    def wait_s(self, now: float, deadline: float, poll_s: float = 0.25) -> float:
        """How long a collecting loop may block: until the next arrival or the deadline, at most
        ``poll_s`` (completions are polled for meanwhile)."""
        upcoming = self.next_time()
        return max(0.0, min(poll_s, deadline - now, upcoming - now if upcoming is not None else poll_s))

    def remaining(self) -> list[tuple[float, Request]]:
        """Everything not yet taken (for the budget cut): due ones at their time, the rest at now."""
        now = time.perf_counter()
        return list(self.due) + [(now, r) for r in self.waiting]

    def offered_req_per_s(self) -> float | None:
        """Arrivals per second as delivered (open loop; None with fewer than 2 or a closed loop)."""
        if len(self.delivered) < 2:
            return None
        span = self.delivered[-1][1] - self.delivered[0][1]
        return (len(self.delivered) - 1) / span if span > 0 else None

    def scheduled_req_per_s(self) -> float | None:
        if len(self.delivered) < 2:
            return None
        span = self.delivered[-1][0] - self.delivered[0][0]
        return (len(self.delivered) - 1) / span if span > 0 else None


def budget_failures(remaining: Sequence[tuple[float, Request]], budget_s: float) -> list[RequestTrace]:
    return [RequestTrace.failed(r, arrival, BUDGET_ERROR.format(budget=budget_s)) for arrival, r in remaining]


def generator_conditions(rounds: Sequence[RoundTrace], load: LoadSpec) -> dict[str, Any]:
    """How well the load generator kept its schedule over the measured rounds (the record's
    ``conditions.load_generator``); ``shortfall`` is set when the case must be marked invalid."""
    lags = sorted(lag for r in rounds for lag in r.arrival_lags_s)
    pairs = [(r.offered_req_per_s, r.scheduled_req_per_s) for r in rounds
             if r.offered_req_per_s is not None and r.scheduled_req_per_s is not None]
    out: dict[str, Any] = {"load": load.label, "lag_p50_ms": None, "lag_max_ms": None,
                           "offered_req_per_s": statistics.fmean(o for o, _ in pairs) if pairs else None,
                           "scheduled_req_per_s": statistics.fmean(s for _, s in pairs) if pairs else None,
                           "cut_by_budget": sum(r.cut_by_budget for r in rounds), "shortfall": None}
    if lags:
        out["lag_p50_ms"] = statistics.median(lags) * 1e3
        out["lag_max_ms"] = lags[-1] * 1e3
    if pairs and out["offered_req_per_s"] < MIN_RATE_KEPT * out["scheduled_req_per_s"]:
        out["shortfall"] = (f"the load generator delivered {out['offered_req_per_s']:.3g} req/s of the "
                            f"{out['scheduled_req_per_s']:.3g} req/s scheduled (< {MIN_RATE_KEPT:.0%}): the case "
                            "measures the generator, not the engine")
    out["shortfall"] = out["shortfall"] or client_behind(rounds)
    saturated = [r.over_saturated for r in rounds if r.over_saturated]
    out["over_saturated"] = dict(saturated[0]) if saturated else None
    return out


def client_behind(rounds: Sequence[RoundTrace]) -> str | None:
    """A load client (the server path) whose own median lateness is beyond the lab's accuracy bound."""
    requests = [q for r in rounds for q in r.requests]
    lags = [q.client_lag_s * 1e3 for q in requests if q.client_lag_s is not None]
    # TTFT as measure/metrics.py:ttft_ms defines it (run/ comes before measure/ in the flow)
    ttfts = [(q.chunk_times[0] - q.t_send) * 1e3 for q in requests if q.ok and q.chunk_times]
    if not lags or not ttfts:
        return None
    lag, ttft = statistics.median(lags), statistics.median(ttfts)
    bound = max(MAX_LAG_MS, MAX_LAG_SHARE * ttft)
    if lag <= bound:
        return None
    return (f"the load client sent requests {lag:.3g} ms late (median) against a bound of {bound:.3g} ms "
            f"(max({MAX_LAG_MS:g} ms, {MAX_LAG_SHARE:.0%} of the median TTFT {ttft:.3g} ms)): the client fell "
            "behind its schedule, the case measures the client, not the server")


def finish_round(t0: float, traces: list[RequestTrace], arrivals: Arrivals, cut: bool) -> RoundTrace:
    """The round's trace, in request order, with the generator's own measurements."""
    return RoundTrace(t0, time.perf_counter(), tuple(sorted(traces, key=lambda t: t.index)),
                      arrival_lags_s=tuple(arrivals.lags), offered_req_per_s=arrivals.offered_req_per_s(),
                      scheduled_req_per_s=arrivals.scheduled_req_per_s(), cut_by_budget=cut)
