"""One round of requests to a server, sent as they arrive from an asyncio event loop, the server
batching them as it does (vLLM and ``transformers serve --continuous-batching`` continuously).

Before the clock starts every body is serialized and the connection pool is opened; a request's
``t_send`` is its scheduled arrival (open loop: the schedule; closed loop: the moment its client's
previous request ended), and how late the client actually put it on the socket is kept per
request (``client_lag_ms``). Where one process cannot keep the schedule, several share it
(loadgen/processes.py): each runs its share of the clients (closed loop) or of the arrivals (open
loop) on its own loop against the same ``perf_counter`` clock (CLOCK_MONOTONIC, one per machine).
An open-loop round whose queue grows without bound is stopped early as over-saturated
(loadgen/saturation.py). A server with Prometheus ``/metrics`` is scraped before and after the
round and sampled during it (loadgen/telemetry.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol, Sequence, TypeVar

from pytest_inferlab.ground.trace import Request, RequestTrace, RoundTrace
from pytest_inferlab.loadgen.client import OpenAIClient, Outcome, ServerQuirks
from pytest_inferlab.loadgen.saturation import SaturationWatch
from pytest_inferlab.loadgen.telemetry import RoundTelemetry, Scrape, reading
from pytest_inferlab.loadgen.unserved import BUDGET_ERROR, SESSION_ENDED, unsent_turns
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.specs.load import LoadSpec

POLL_S = 0.1                # the saturation watch samples requests in flight this often
TELEMETRY_PERIOD_S = 0.5    # /metrics is sampled this often during a round
OPEN_LOOP_CONNECTIONS = 64  # opened per process before an open-loop round (more are opened when needed)
SATURATED = ("not served: the server is over-saturated at this load (requests in flight and time to first "
             "token kept rising); the round stopped early")

T = TypeVar("T")


class LoadProcessPool(Protocol):
    """Worker processes that share a round (loadgen/processes.py:LoadProcesses)."""

    def serve(self, target: "LoadTarget", prepared: Sequence[Any], load: LoadSpec, budget_s: float) -> RoundTrace: ...

    def close(self) -> None: ...


class LoadTarget(Protocol):
    """A server the load generator drives (engines/openai_engine.py:OpenAIServerEngine is one)."""

    def prepare(self, requests: Sequence[Request], sampling: SamplingSpec) -> list[Any]:
        """Everything a request needs before its send time (bodies serialized)."""

    def client(self) -> OpenAIClient:
        """A client not yet entered: an async context manager with ``warm``, ``send``, ``text``."""

    def finish(self, outcomes: Sequence[Outcome]) -> list[RequestTrace]:
        """Traces from the client's outcomes (token counting happens here, off the clock)."""

    def learned(self, quirks: ServerQuirks | None) -> None:
        """What a client learned about the server during a round (it may have run in another process)."""

    def load_processes(self) -> LoadProcessPool | None:
        """None: one process sends a round; else the worker processes that share it."""


def run_coroutine(coroutine: Awaitable[T]) -> T:
    """Run on a fresh event loop; on a thread of its own where this thread already runs one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@dataclass(frozen=True, slots=True)
class Share:
    """One process's part of a round: ``clients`` concurrent clients over its requests (closed
    loop), or each request at its absolute time in ``times`` (open loop)."""

    prepared: tuple[Any, ...]
    clients: int = 0
    times: tuple[float, ...] | None = None
    staged: LoadSpec | None = None  # a closed loop whose client count changes by stage (one process)


@dataclass(slots=True)
class ShareResult:
    """What one process saw: outcomes, what was still in flight when it stopped, and why it stopped."""

    outcomes: list[Any] = field(default_factory=list)
    in_flight: dict[int, tuple[float, Request]] = field(default_factory=dict)
    unserved: list[tuple[float, Request]] = field(default_factory=list)  # when the round stopped: (due, request)
    abandoned: list[RequestTrace] = field(default_factory=list)  # later turns of sessions whose turn failed
    stopped: str | None = None
    saturation: dict[str, Any] | None = None
    telemetry: RoundTelemetry | None = None
    t0: float = 0.0
    t_end: float = 0.0
    quirks: ServerQuirks | None = None


def split(prepared: Sequence[Any], load: LoadSpec, t0: float, processes: int) -> list[Share]:
    """The round's requests dealt out to ``processes`` (round robin, so every share sees the whole span)."""
    if load.open_loop:
        times = [t0 + offset for offset in load.offsets([p.request for p in prepared])]
        return [Share(tuple(prepared[w::processes]), times=tuple(times[w::processes]))
                for w in range(min(processes, max(1, len(prepared))))]
    clients = min(load.concurrency, len(prepared))
    if load.stages:
        return [Share(tuple(prepared), clients=clients, staged=load)]
    shares = []
    for w in range(processes):
        mine = [c for c in range(clients) if c % processes == w]
        shares.append(Share(tuple(p for i, p in enumerate(prepared) if i % clients in mine), clients=len(mine)))
    return [s for s in shares if s.prepared] or [Share(())]


class LoadRound:
    """One process's share of a round against ``client`` (not yet entered)."""

    def __init__(self, client: OpenAIClient, share: Share, t0: float | None, budget_s: float, *, sample_metrics: bool = True,
                 stop: Callable[[], bool] | None = None, announce: Callable[[], None] | None = None) -> None:
        self.client = client
        self.share = share
        self.t0 = t0  # None: start the clock once connected (one process)
        self.budget_s = budget_s
        self.sample_metrics = sample_metrics
        self.stop_elsewhere = stop or (lambda: False)  # another process found the round over-saturated
        self.announce = announce or (lambda: None)
        self.watch = SaturationWatch() if share.times is not None else None
        self.result = ShareResult()

    async def run(self) -> ShareResult:
        async with self.client as client:
            share = self.share
            await client.warm(min(len(share.prepared), share.clients or OPEN_LOOP_CONNECTIONS))
            before = await self._scrape(client)
            if self.t0 is None:
                self.t0 = time.perf_counter()
                if share.times is not None:
                    share = Share(share.prepared, times=tuple(self.t0 + t for t in share.times))
            elif self.t0 > time.perf_counter():
                await asyncio.sleep(self.t0 - time.perf_counter())
            self.result.t0 = self.t0
            main = asyncio.create_task(self._open(client, share) if share.times is not None
                                       else self._closed(client, share))
            during: list[Scrape] = []
            helpers = [asyncio.create_task(self._watch(main))]
            if before is not None and before.schema is not None:
                helpers.append(asyncio.create_task(self._sample(client, during)))
            done, _ = await asyncio.wait({main}, timeout=self.t0 + self.budget_s - time.perf_counter())
            if not done:
                self.result.stopped = BUDGET_ERROR.format(budget=self.budget_s)
                main.cancel()
            await asyncio.gather(main, return_exceptions=True)
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.result.t_end = time.perf_counter()
            self._unserved(share)
            after = await self._scrape(client)
            if before is not None and after is not None:
                self.result.telemetry = RoundTelemetry(before, after, tuple(during), TELEMETRY_PERIOD_S)
            self.result.quirks = client.quirks
        return self.result

    def _unserved(self, share: Share) -> None:
        """What the round did not serve: still in flight, or never sent (due at its time, or now),
        and the later turns of sessions the stop cut short."""
        answered = ({o.request.index for o in self.result.outcomes} | set(self.result.in_flight)
                    | {t.index for t in self.result.abandoned})
        due = share.times or [self.result.t_end] * len(share.prepared)
        self.result.unserved = [*self.result.in_flight.values(),
                                *((t, p.request) for t, p in zip(due, share.prepared)
                                  if p.request.index not in answered)]
        self.result.unserved += [(self.result.t_end, Request(index, (), 0))
                                 for p in share.prepared for index in p.request.turns_left() if index not in answered]

    async def _scrape(self, client: Any) -> Scrape | None:
        return reading(time.perf_counter(), *await client.text("/metrics")) if self.sample_metrics else None

    async def _send(self, client: Any, prepared: Any, scheduled: float) -> Any:
        index = prepared.request.index
        self.result.in_flight[index] = (scheduled, prepared.request)
        outcome = await client.send(prepared, scheduled)
        del self.result.in_flight[index]
        self.result.outcomes.append(outcome)
        if self.watch is not None:
            result = outcome.result
            ttft = result.times[0] - scheduled if outcome.failure is None and result and result.times else None
            self.watch.finished(scheduled, ttft, outcome.ended)
        return outcome

    async def _session(self, client: Any, prepared: Any, scheduled: float) -> Any:
        """A request, then (a session's) each next turn its think time after the answer; the last outcome.
        A failed turn ends the session: its turns left fail unsent."""
        while True:
            outcome = await self._send(client, prepared, scheduled)
            if outcome.failure is not None:
                self.result.abandoned += unsent_turns(prepared.request, outcome.ended,
                                                      SESSION_ENDED.format(turn=prepared.request.turn + 1))
                return outcome
            follow = prepared.next_turn("".join(outcome.result.texts))
            if follow is None:
                return outcome
            prepared, think_s = follow
            scheduled = outcome.ended + think_s
            if scheduled > time.perf_counter():
                await asyncio.sleep(scheduled - time.perf_counter())

    async def _closed(self, client: Any, share: Share) -> None:
        """``clients`` clients; each sends its next request the moment its previous one (or its
        previous session) ended."""
        queue = deque(share.prepared)
        t0 = self.t0

        async def one_client(number: int) -> None:
            scheduled = t0
            while queue:
                if share.staged is not None:  # this client sends only while its stage runs that many
                    start = share.staged.client_starts_s(number, max(scheduled, time.perf_counter()) - t0)
                    if start is None:
                        return
                    scheduled = max(scheduled, t0 + start)
                    if scheduled > time.perf_counter():
                        await asyncio.sleep(scheduled - time.perf_counter())
                    if not queue:
                        return
                scheduled = (await self._session(client, queue.popleft(), scheduled)).ended

        async def clients() -> Any:
            for number in range(share.clients):
                yield one_client(number)

        await self._all(clients())

    async def _open(self, client: Any, share: Share) -> None:
        """Every request at its scheduled time, however many are in flight."""
        async def at(due: float, prepared: Any) -> None:
            await self._session(client, prepared, due)

        async def arrivals() -> Any:
            for due, prepared in zip(share.times, share.prepared):
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                yield at(due, prepared)

        await self._all(arrivals())

    async def _all(self, coroutines: Any) -> None:
        """Start each coroutine the async iterator yields as a task, yielding once after each so that
        its request reaches the socket before the next starts (aiohttp writes a body from a task of
        its own before Python 3.12), then wait for all; cancelled, cancel them all."""
        tasks: list[asyncio.Task[Any]] = []
        try:
            async for coroutine in coroutines:
                tasks.append(asyncio.create_task(coroutine))
                await asyncio.sleep(0)
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, main: asyncio.Task[None]) -> None:
        while not main.done():
            await asyncio.sleep(POLL_S)
            if self.stop_elsewhere():
                self.result.stopped = SATURATED
                main.cancel()
                return
            if self.watch is None:
                continue
            self.watch.sample(time.perf_counter(), len(self.result.in_flight))
            verdict = self.watch.verdict()
            if verdict is not None:
                self.result.saturation, self.result.stopped = verdict, SATURATED
                self.announce()
                main.cancel()
                return

    async def _sample(self, client: Any, during: list[Scrape]) -> None:
        while True:
            await asyncio.sleep(TELEMETRY_PERIOD_S)
            during.append(reading(time.perf_counter(), *await client.text("/metrics")))


def assemble(target: LoadTarget, load: LoadSpec, results: Sequence[ShareResult], budget_s: float) -> RoundTrace:
    """The round's trace from every share: traces counted by the target, the unserved as failures."""
    t0 = results[0].t0
    outcomes = [o for r in results for o in r.outcomes]
    t_end = max(r.t_end for r in results)
    saturation = next((r.saturation for r in results if r.saturation), None)
    stopped = SATURATED if saturation else next((r.stopped for r in results if r.stopped), None)
    traces = target.finish(outcomes)
    reason = stopped or BUDGET_ERROR.format(budget=budget_s)
    traces += [RequestTrace.failed(r, due, reason) for result in results for due, r in result.unserved]
    traces += [t for result in results for t in result.abandoned]
    sent = sorted((o.scheduled, o.started) for o in outcomes if o.request.turn == 0)  # the schedule's own
    offered = scheduled_rate = None
    if load.open_loop and len(sent) >= 2:
        offered, scheduled_rate = _rate([s for _, s in sent]), _rate([s for s, _ in sent])
    telemetry = next((r.telemetry for r in results if r.telemetry is not None), None)
    return RoundTrace(t0, t_end, tuple(sorted(traces, key=lambda t: t.index)),
                      arrival_lags_s=tuple(o.started - o.scheduled for o in outcomes),
                      offered_req_per_s=offered, scheduled_req_per_s=scheduled_rate,
                      cut_by_budget=stopped is not None and saturation is None,
                      server_metrics=telemetry, over_saturated=saturation)


def _rate(times: Sequence[float]) -> float | None:
    ordered = sorted(times)
    span = ordered[-1] - ordered[0]
    return (len(ordered) - 1) / span if span > 0 else None


def serve_one_process(target: LoadTarget, prepared: Sequence[Any], load: LoadSpec, budget_s: float) -> RoundTrace:
    """The round on this process's own event loop; its clock starts once the pool is open."""
    result = run_coroutine(LoadRound(target.client(), split(prepared, load, 0.0, 1)[0], None, budget_s).run())
    target.learned(result.quirks)
    return assemble(target, load, [result], budget_s)
