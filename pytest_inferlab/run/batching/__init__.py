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
import heapq
import itertools
import statistics
import time
from collections import deque

from typing import Any, Protocol, Sequence

from pytest_inferlab.device import Device
from pytest_inferlab.specs.load import LoadSpec
from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.batching import BatchingSpec
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.ground.trace import Request, RequestTrace, RoundTrace
from pytest_inferlab.loadgen.unserved import BUDGET_ERROR, SESSION_ENDED, unsent_turns

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

    def lossless_claim(self, spec: BatchingSpec) -> str | None:
        """What this batcher claims gives the greedy outputs of one-request-at-a-time decoding (the lab
        checks it: measure/exactness.py), or None: no claim to check (sequential is that decoding; a
        server's tokens are its own)."""


batchers: Registry[Batcher] = Registry("batching engines")
batchers.register("sequential", "pytest_inferlab.run.batching.padded:SEQUENTIAL")
batchers.register("static", "pytest_inferlab.run.batching.padded:STATIC")
batchers.register("continuous", "pytest_inferlab.run.batching.continuous:CONTINUOUS")
batchers.register("server", "pytest_inferlab.run.batching.server:SERVER")


def lossless_claim(batching: BatchingSpec | None, batch_size: int) -> str | None:
    """The case's claim to sequential greedy outputs: its batcher's, or padded batches of ``batch_size``."""
    if batching is not None:
        return batchers.get(batching.kind).lossless_claim(batching)
    return f"padded batches of {batch_size}" if batch_size > 1 else None


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
    completion with ``concurrency`` in flight (closed loop). A session's next turn arrives its think
    time after the turn before it answered (in a closed loop its client waits for it meanwhile).
    Times are ``perf_counter`` seconds."""

    def __init__(self, load: LoadSpec, requests: Sequence[Request], t0: float) -> None:
        self.load = load
        self.t0 = t0
        self.due: list[tuple[float, int, Request]] = []  # a heap: (time, order, request)
        self.order = itertools.count()
        self.waiting: deque[Request] = deque(requests)  # closed loop: not yet sent
        self.delivered: list[tuple[float, float]] = []  # (scheduled, delivered) of open-loop arrivals
        self.lags: list[float] = []
        self.abandoned: list[RequestTrace] = []  # later turns of sessions whose turn failed
        if load.open_loop:
            for offset, request in zip(load.offsets(requests), requests):
                self._push(t0 + offset, request)
            self.waiting.clear()
        else:
            self.retired = 0  # staged closed loop: clients that stopped where a stage runs fewer
            self.openings: list[tuple[float, int]] = []  # (seconds after t0, clients that start then)
            start, before = 0.0, 0
            for clients, duration in load.stages or ((load.concurrency, 0.0),):
                if clients > before:
                    self.openings.append((start, int(clients) - before))
                    for _ in range(min(int(clients) - before, len(self.waiting))):
                        self._push(t0 + start, self.waiting.popleft())
                start, before = start + duration, int(clients)

    def _push(self, when: float, request: Request) -> None:
        heapq.heappush(self.due, (when, next(self.order), request))

    def __bool__(self) -> bool:
        return bool(self.due or self.waiting)

    def next_time(self) -> float | None:
        return self.due[0][0] if self.due else None

    def take_due(self, now: float, observed: bool = False) -> list[tuple[float, Request]]:
        """Arrivals due by ``now``. ``observed``: the caller was waiting for them, so ``now`` minus the
        scheduled time is the generator's own lateness (else the engine was busy: that is queueing)."""
        taken = []
        while self.due and self.due[0][0] <= now:
            when, _, request = heapq.heappop(self.due)
            taken.append((when, request))
            delivered = now if observed else when
            if self.load.open_loop and request.turn == 0:  # the schedule's own arrivals
                self.delivered.append((when, delivered))
            if observed:
                self.lags.append(now - when)
        return taken

    def completed(self, done: Sequence[tuple[Request, RequestTrace]], now: float) -> None:
        """Each answered request: its session's next turn after the think time; else (closed loop) that
        client's next request at ``now``. A failed turn ends its session: the turns left fail unsent."""
        for request, trace in done:
            follow = request.next_turn(trace.output_ids) if trace.ok else None
            if follow is not None:
                self._push(now + follow[1], follow[0])
                continue
            if not trace.ok:
                self.abandoned += unsent_turns(request, now, SESSION_ENDED.format(turn=request.turn + 1))
            if not self.load.open_loop and self.waiting:
                self._next_for_client(now)

    def _next_for_client(self, now: float) -> None:
        """A closed-loop client is free: its next request now, unless its stage runs fewer clients
        than are active (it retires; a later stage's clients were scheduled at its start)."""
        elapsed = now - self.t0
        active = sum(extra for at, extra in self.openings if at <= elapsed) - self.retired
        if active > self.load.clients_at(elapsed):
            self.retired += 1
            return
        self._push(now, self.waiting.popleft())

    def wait_s(self, now: float, deadline: float, poll_s: float = 0.25) -> float:
        """How long a collecting loop may block: until the next arrival or the deadline, at most
        ``poll_s`` (completions are polled for meanwhile)."""
        upcoming = self.next_time()
        return max(0.0, min(poll_s, deadline - now, upcoming - now if upcoming is not None else poll_s))

    def remaining(self) -> list[tuple[float, Request]]:
        """Everything not yet taken (for the budget cut): due ones at their time, the rest at now."""
        now = time.perf_counter()
        return [(when, r) for when, _, r in sorted(self.due)] + [(now, r) for r in self.waiting]

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
    reason = BUDGET_ERROR.format(budget=budget_s)
    return [trace for arrival, r in remaining
            for trace in [RequestTrace.failed(r, arrival, reason), *unsent_turns(r, arrival, reason)]]


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
    traces = traces + arrivals.abandoned
    return RoundTrace(t0, time.perf_counter(), tuple(sorted(traces, key=lambda t: t.index)),
                      arrival_lags_s=tuple(arrivals.lags), offered_req_per_s=arrivals.offered_req_per_s(),
                      scheduled_req_per_s=arrivals.scheduled_req_per_s(), cut_by_budget=cut)
