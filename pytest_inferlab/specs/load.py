"""Arrival processes: how a workload's requests reach the engine.

Closed loop: ``concurrency`` clients, each sending its next request when the previous one
completes (offered load follows the engine). Open loop: requests arrive on a schedule that does
not wait for the engine: Poisson with a seeded generator, constant spacing, bursts, gamma gaps
with a burstiness shape (rescaled so the span is exactly the target rate, as vLLM's bench does),
a linear or exponential ramp between two rates, staged rates, or a trace's own times sped up.
Open-loop schedules come from a registry of pure functions: ``arrival_processes.register("name", fn)``
adds one; a schedule sees the requests (a trace's carry their arrival times).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.core import stable_id, spec_dict

CLOSED = "closed"

Schedule = Callable[["LoadSpec", Sequence[Any]], list[float]]
arrival_processes: Registry[Schedule] = Registry("arrival processes")


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """An arrival process. Write it as ``closed:4``, ``poisson:2.5`` (req/s), ``constant:1`` or
    ``burst:8@0.5`` (bursts of 8 requests, 0.5 req/s on average), or build it with the class methods."""

    process: str
    concurrency: int | None = None  # closed loop: clients in flight
    rate: float | None = None  # open loop: mean requests per second
    burst_size: int | None = None  # burst: requests arriving together
    seed: int = 0  # Poisson and gamma gaps
    # Added with realistic traffic; left out of the spec id when unset (earlier loads keep their ids).
    burstiness: float | None = None  # gamma, ramps: the gaps' shape (1 = Poisson, < 1 burstier)
    rate_end: float | None = None  # ramps: the rate reached by the last request (``rate``: the first)
    stages: tuple[tuple[float, float], ...] = ()  # (req/s or clients, seconds) one after the other
    speedup: float | None = None  # trace: replay this many times faster than recorded

    NEW_FIELDS = ("burstiness", "rate_end", "stages", "speedup")

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple((float(r), float(d)) for r, d in self.stages))
        if self.process == CLOSED:
            if self.stages:
                if any(not (c >= 1 and c == int(c) and d > 0) for c, d in self.stages):
                    raise ValueError(f"load closed: stages need whole clients >= 1 for > 0 s (e.g. closed:2x10,8x10), "
                                     f"got {list(self.stages)}")
                object.__setattr__(self, "concurrency", int(max(c for c, _ in self.stages)))
            if not isinstance(self.concurrency, int) or self.concurrency < 1:
                raise ValueError(f"load {self.label}: a closed loop needs concurrency >= 1 (e.g. closed:4)")
            return
        try:
            arrival_processes.get(self.process)
        except KeyError as exc:  # the registry's message: the known names and close matches
            raise ValueError(f"{exc} (or {CLOSED}, the closed loop)") from None
        if self.process == "stages":
            if not self.stages or any(not (r > 0 and d > 0) for r, d in self.stages):
                raise ValueError(f"load stages: needs stages of rate > 0 req/s for > 0 s (e.g. stages:1x10,4x10), "
                                 f"got {list(self.stages)}")
            return
        if self.process == "trace":
            if self.speedup is None or not self.speedup > 0:
                raise ValueError(f"load trace: the speed-up must be > 0 (trace:1 replays on time), got {self.speedup!r}")
            return
        if self.rate is None or not self.rate > 0:
            raise ValueError(f"load {self.process}: needs a rate > 0 requests/s (e.g. {self.process}:2.0), got {self.rate!r}")
        if self.burstiness is not None and not self.burstiness > 0:
            raise ValueError(f"load {self.process}: burstiness (the gamma shape) must be > 0, got {self.burstiness!r}")
        if self.process in RAMPS and (self.rate_end is None or not self.rate_end > 0):
            raise ValueError(f"load {self.process}: needs an end rate > 0 (e.g. {self.process}:1-8), got {self.rate_end!r}")
        if self.process == "burst" and (not isinstance(self.burst_size, int) or self.burst_size < 1):
            raise ValueError(f"load burst: needs a burst size >= 1 (e.g. burst:8@0.5), got {self.burst_size!r}")

    @classmethod
    def closed(cls, concurrency: int) -> "LoadSpec":
        return cls(CLOSED, concurrency=concurrency)

    @classmethod
    def poisson(cls, rate: float, seed: int = 0) -> "LoadSpec":
        return cls("poisson", rate=float(rate), seed=seed)

    @classmethod
    def constant(cls, rate: float) -> "LoadSpec":
        return cls("constant", rate=float(rate))

    @classmethod
    def burst(cls, size: int, rate: float) -> "LoadSpec":
        return cls("burst", rate=float(rate), burst_size=size)

    @classmethod
    def closed_stages(cls, *stages: tuple[int, float]) -> "LoadSpec":
        """``closed_stages((2, 10), (8, 10))``: 2 clients for 10 s, then 8 (the last stage lasts)."""
        return cls(CLOSED, stages=tuple(stages))

    def clients_at(self, elapsed_s: float) -> int:
        """Clients a closed loop runs ``elapsed_s`` after the round's start (its stage's, or all)."""
        if not self.stages:
            return self.concurrency or 0
        end = 0.0
        for clients, duration in self.stages:
            end += duration
            if elapsed_s < end:
                return int(clients)
        return int(self.stages[-1][0])

    def client_starts_s(self, client: int, elapsed_s: float) -> float | None:
        """When (seconds after the start, at ``elapsed_s`` or later) closed-loop client number ``client``
        may send: now while its stage runs that many clients, else the next stage that does; None: never."""
        if client < self.clients_at(elapsed_s):
            return elapsed_s
        start = 0.0
        for clients, duration in self.stages:
            if start + duration > elapsed_s and client < clients:
                return max(start, elapsed_s)
            start += duration
        return None

    @classmethod
    def gamma(cls, rate: float, burstiness: float, seed: int = 0) -> "LoadSpec":
        return cls("gamma", rate=float(rate), burstiness=float(burstiness), seed=seed)

    @classmethod
    def ramp(cls, start: float, end: float, exponential: bool = False, seed: int = 0) -> "LoadSpec":
        return cls("ramp-exp" if exponential else "ramp", rate=float(start), rate_end=float(end), seed=seed)

    @classmethod
    def staged(cls, *stages: tuple[float, float], seed: int = 0) -> "LoadSpec":
        """``staged((1, 10), (4, 10))``: 1 req/s for 10 s, then 4 req/s for 10 s (Poisson within each)."""
        return cls("stages", stages=tuple(stages), seed=seed)

    @classmethod
    def trace(cls, speedup: float = 1.0) -> "LoadSpec":
        """The workload's trace times (prompts='trace'), ``speedup`` times faster."""
        return cls("trace", speedup=float(speedup))

    @property
    def open_loop(self) -> bool:
        return self.process != CLOSED

    @property
    def label(self) -> str:
        if self.process == CLOSED:
            if self.stages:
                return f"closed:{stages_text(self.stages)}"
            return f"closed:{self.concurrency}"
        if self.process == "burst":
            return f"burst:{self.burst_size}@{self.rate:g}"
        if self.process == "gamma":
            return f"gamma:{self.rate:g},{self.burstiness:g}"
        if self.process in RAMPS:
            return f"{self.process}:{self.rate:g}-{self.rate_end:g}"
        if self.process == "stages":
            return f"stages:{stages_text(self.stages)}"
        if self.process == "trace":
            return f"trace:{self.speedup:g}"
        return f"{self.process}:{self.rate:g}"

    def to_dict(self) -> dict[str, Any]:
        """The canonical form behind ``spec_id``: fields added later only where set."""
        out = spec_dict(self)
        for name in self.NEW_FIELDS:
            if out[name] in (None, ()):
                del out[name]
        return out

    @property
    def spec_id(self) -> str:
        return stable_id(self.to_dict())

    def offsets(self, requests: int | Sequence[Any]) -> list[float]:
        """Seconds after the round's start at which each request arrives (open loop): ``requests``
        are the round's requests in order (or their count, for processes that need no more)."""
        if not self.open_loop:
            raise ValueError("a closed loop has no schedule: arrivals follow completions")
        if isinstance(requests, int):
            requests = [None] * requests
        return arrival_processes.get(self.process)(self, requests)


@arrival_processes.register("poisson")
def poisson_offsets(spec: LoadSpec, requests: Sequence[Any]) -> list[float]:
    """Exponential gaps of mean 1/rate from a seeded generator; the first request at 0."""
    rng = random.Random(spec.seed)
    offsets, t = [], 0.0
    for i in range(len(requests)):
        offsets.append(t)
        t += rng.expovariate(spec.rate)
    return offsets


@arrival_processes.register("constant")
def constant_offsets(spec: LoadSpec, requests: Sequence[Any]) -> list[float]:
    return [i / spec.rate for i in range(len(requests))]


@arrival_processes.register("burst")
def burst_offsets(spec: LoadSpec, requests: Sequence[Any]) -> list[float]:
    """``burst_size`` requests together, bursts spaced so the mean rate is ``rate``."""
    spacing = spec.burst_size / spec.rate
    return [(i // spec.burst_size) * spacing for i in range(len(requests))]


def gamma_gap(rng: random.Random, rate: float, burstiness: float) -> float:
    """A gap of mean 1/rate whose shape is ``burstiness`` (vLLM's bench: shape b, scale 1/(rate b))."""
    return rng.gammavariate(burstiness, 1.0 / (rate * burstiness))


@arrival_processes.register("gamma")
def gamma_offsets(spec: LoadSpec, requests: Sequence[Any]) -> list[float]:
    """Gamma gaps (shape ``burstiness``: 1 is Poisson, below 1 burstier), then every offset scaled so
    the last request arrives at (n - 1) / rate: the round's rate is the target, not a draw around it."""
    rng = random.Random(spec.seed)
    offsets, t = [], 0.0
    for _ in range(len(requests)):
        offsets.append(t)
        t += gamma_gap(rng, spec.rate, spec.burstiness or 1.0)
    if len(offsets) >= 2 and offsets[-1] > 0:
        scale = (len(offsets) - 1) / spec.rate / offsets[-1]
        offsets = [o * scale for o in offsets]
    return offsets


def ramp_offsets(spec: LoadSpec, requests: Sequence[Any]) -> list[float]:
    """Request i arrives after a gap drawn at the rate reached at progress i/(n-1), from ``rate`` to
    ``rate_end``: linearly (``ramp``) or geometrically (``ramp-exp``), as vLLM's ramp-up strategies."""
    rng = random.Random(spec.seed)
    start, end, n = spec.rate, spec.rate_end, len(requests)
    offsets, t = [], 0.0
    for i in range(n):
        offsets.append(t)
        progress = i / (n - 1) if n > 1 else 1.0
        rate = start * (end / start) ** progress if spec.process == "ramp-exp" else start + (end - start) * progress
        t += gamma_gap(rng, rate, spec.burstiness or 1.0)
    return offsets


RAMPS = ("ramp", "ramp-exp")
for _name in RAMPS:
    arrival_processes.register(_name, ramp_offsets)


@arrival_processes.register("stages")
def staged_offsets(spec: LoadSpec, requests: Sequence[Any]) -> list[float]:
    """Poisson arrivals at each stage's rate for its duration, one stage after the other; the last
    stage goes on until every request has arrived (size the workload to end with the stages)."""
    rng = random.Random(spec.seed)
    ends, total = [], 0.0
    for _, duration in spec.stages:
        total += duration
        ends.append(total)
    offsets, t, stage = [], 0.0, 0
    for _ in range(len(requests)):
        offsets.append(t)
        while stage < len(ends) - 1 and t >= ends[stage]:
            stage += 1
        t += rng.expovariate(spec.stages[stage][0])
    return offsets


@arrival_processes.register("trace")
def trace_offsets(spec: LoadSpec, requests: Sequence[Any]) -> list[float]:
    """The requests' own arrival times (a trace workload's), from the first, divided by the speed-up."""
    times = [getattr(r, "arrival_s", None) for r in requests]
    if not times or any(t is None for t in times):
        raise ValueError("load trace: the workload's requests carry no arrival times; use a trace workload "
                         "(prompts='trace', trace=<name or path>) or another load")
    first = times[0]
    return [(t - first) / spec.speedup for t in times]


def stages_text(stages: tuple[tuple[float, float], ...]) -> str:
    """``2x10,8x10``: each stage's rate (or clients) x seconds, the form ``parse_stages`` reads."""
    return ",".join(f"{amount:g}x{seconds:g}" for amount, seconds in stages)


def parse_stages(value: str) -> tuple[tuple[float, float], ...]:
    """``2x10,8x10`` -> ((2.0, 10.0), (8.0, 10.0)); ValueError where a stage is not <number>x<seconds>."""
    stages = tuple(tuple(float(x) for x in stage.split("x", 1)) for stage in value.split(","))
    if any(len(stage) != 2 for stage in stages):
        raise ValueError(value)
    return stages  # type: ignore[return-value]


def parse_load(text: str | LoadSpec, seed: int = 0) -> LoadSpec:
    """``closed:4``, ``poisson:2.5``, ``constant:1``, ``burst:8@0.5``, ``gamma:2,0.5``, ``ramp:1-8``,
    ``ramp-exp:1-8``, ``stages:1x10,4x10``, ``trace`` or ``trace:2`` (or a LoadSpec, returned as is)."""
    if isinstance(text, LoadSpec):
        return text
    process, _, value = str(text).strip().partition(":")
    forms = ("closed:<concurrency>, closed:<clients>x<seconds>,..., poisson:<req/s>, constant:<req/s>, burst:<size>@<req/s>, "
             "gamma:<req/s>,<burstiness>, ramp:<req/s>-<req/s>, ramp-exp:<req/s>-<req/s>, "
             "stages:<req/s>x<seconds>,... or trace[:<speed-up>]")
    try:
        if process == CLOSED and "x" in value:
            numbers: dict = {"stages": parse_stages(value)}
        elif process == CLOSED:
            numbers = {"concurrency": int(value)}
        elif process == "burst":
            size, _, rate = value.partition("@")
            numbers = {"burst_size": int(size), "rate": float(rate)}
        elif process == "gamma":
            rate, _, shape = value.partition(",")
            numbers = {"rate": float(rate), "burstiness": float(shape)}
        elif process in RAMPS:
            start, _, end = value.partition("-")
            numbers = {"rate": float(start), "rate_end": float(end) if end else None}
        elif process == "stages":
            numbers = {"stages": parse_stages(value)}
        elif process == "trace":
            numbers = {"speedup": float(value or 1.0)}
        else:
            numbers = {"rate": float(value)}
    except ValueError:
        raise ValueError(f"load {text!r}: expected {forms}") from None
    seeded = process in ("poisson", "gamma", "stages", *RAMPS)
    try:
        return LoadSpec(process, seed=seed if seeded else 0, **numbers)
    except ValueError as exc:
        raise ValueError(f"load {text!r}: {exc}") from None
